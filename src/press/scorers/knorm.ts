import { CacheOnlyScorer } from './cache-only.js';

/** Knorm: keys with the smallest L2 norm score highest. */
export const knormScorer = (): CacheOnlyScorer =>
  new CacheOnlyScorer('knorm', () => (head, d) => {
    const s = new Float64Array(head.length);
    const keys = head.keyRows();
    for (let j = 0; j < head.length; j++) {
      let ss = 0;
      for (let i = 0; i < d; i++) ss += keys[j * d + i] * keys[j * d + i];
      s[j] = -Math.sqrt(ss);
    }
    return s;
  });
