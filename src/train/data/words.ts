import { Rng } from '../../util/rng.js';
import { NEVER_TRAINED } from '../../eval/datasets/split.js';

/** Lower-case words of 3..10 letters appearing in `text`, deduplicated, in a fixed order. */
export function vocabularyOf(text: string): string[] {
  const seen = new Set<string>();
  for (const m of text.toLowerCase().matchAll(/\b[a-z]{3,10}\b/g)) seen.add(m[0]);
  return [...seen].sort();
}

/** A stable hash of a string (FNV-1a) for deterministic splits. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function randomDigits(rng: Rng, n: number): string {
  let s = String(1 + rng.int(9));
  for (let i = 1; i < n; i++) s += String(rng.int(10));
  return s;
}

export function randomUuid(rng: Rng): string {
  const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[rng.int(16)]).join('');
  return `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
}

const ONSETS = [
  'b',
  'br',
  'c',
  'ch',
  'd',
  'dr',
  'f',
  'g',
  'gl',
  'h',
  'k',
  'l',
  'm',
  'n',
  'p',
  'pl',
  'qu',
  'r',
  's',
  'st',
  't',
  'tr',
  'v',
  'w',
  'z',
];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'ai', 'ea', 'io', 'ou', 'y'];
const HELD_OUT_NAMES = new Set(NEVER_TRAINED.flatMap((s) => s.split(' ')).map(capitalize));
const CODAS = ['', '', '', 'n', 'r', 's', 'l', 'nd', 'st', 'x', 'rk', 'm'];

/**
 * A pronounceable made-up name ("Drovaneth Quilsby") that no text contains: copying one exercises the rare
 * subword pieces that held-out names (a needle's "San Francisco") are made of, not a memorized list.
 */
export function pseudoName(rng: Rng): string {
  const word = (): string => {
    let w = '';
    for (let s = 2 + rng.int(2); s > 0; s--) w += rng.pick(ONSETS) + rng.pick(VOWELS) + (s === 1 ? rng.pick(CODAS) : '');
    w = capitalize(w);
    return HELD_OUT_NAMES.has(w) ? word() : w; // "Dolores" can be spelled from these syllables
  };
  return rng.next() < 0.5 ? word() : `${word()} ${word()}`;
}

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** "a, b and c" */
export function joinAnd(xs: string[]): string {
  if (xs.length <= 1) return xs.join('');
  return `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
}
