import { Rng } from '../../util/rng.js';

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

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** "a, b and c" */
export function joinAnd(xs: string[]): string {
  if (xs.length <= 1) return xs.join('');
  return `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
}
