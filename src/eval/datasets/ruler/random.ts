import type { Rng } from '../../../util/rng.js';

/** Python's random.sample: k distinct elements in random order. */
export function sample<T>(rng: Rng, xs: readonly T[], k: number): T[] {
  if (k > xs.length) throw new Error(`internal error: sample of ${k} from ${xs.length}`);
  const a = xs.slice();
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(a.length - i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, k);
}

/** Integer in [lo, hi] inclusive (Python's random.randint). */
export function randint(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/** k random characters from `alphabet` (random.choices). */
export function choices(rng: Rng, alphabet: string, k: number): string {
  let s = '';
  for (let i = 0; i < k; i++) s += alphabet[rng.int(alphabet.length)];
  return s;
}

export const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
export const LOWER = 'abcdefghijklmnopqrstuvwxyz';

/** str(uuid.UUID(int=random.getrandbits(128), version=4)): version nibble 4, variant 10xx. */
export function randomUuid(rng: Rng): string {
  const hex = '0123456789abcdef';
  const nib = (): string => hex[rng.int(16)];
  const part = (n: number): string => Array.from({ length: n }, nib).join('');
  const variant = hex[8 + rng.int(4)];
  return `${part(8)}-${part(4)}-4${part(3)}-${variant}${part(3)}-${part(12)}`;
}

/** A seed mixed from several numbers and strings, so every sample has its own stream. */
export function mixSeed(...parts: (number | string)[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    const s = String(p);
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
    h = Math.imul(h ^ 0x2f, 0x01000193) >>> 0;
  }
  return h;
}
