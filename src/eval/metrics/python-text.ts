/**
 * The few Python string semantics the official metric scripts rely on, reproduced exactly
 * (str.split(), str.strip(), string.punctuation, round-half-to-even), so scores match theirs.
 */

/** Characters Python's str.isspace() accepts (str.split() with no argument splits on runs of these). */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'u');
const LEADING = new RegExp(`^[${PY_SPACE}]+`, 'u');
const TRAILING = new RegExp(`[${PY_SPACE}]+$`, 'u');

/** Python `s.split()`: split on whitespace runs, no empty strings. */
export function pySplit(s: string): string[] {
  return s.split(SPACE_RUN).filter((w) => w.length > 0);
}

/** Python `s.strip()` with no argument. */
export function pyStrip(s: string): string {
  return s.replace(LEADING, '').replace(TRAILING, '');
}

/** Python `string.punctuation`. */
export const PY_PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/** Python 3 `round(x)` for a float: ties go to the even integer. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Python `re.findall(r"\d+", s)` on a str (\d matches any Unicode decimal digit). */
export function pyFindDigits(s: string): string[] {
  return s.match(/\p{Nd}+/gu) ?? [];
}

/** Code points of a string (Python indexes str by code point, JavaScript by UTF-16 unit). */
export function codePoints(s: string): string[] {
  return Array.from(s);
}
