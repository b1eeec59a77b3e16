import { CacheOnlyScorer } from './cache-only.js';

/** Knorm: keys with the smallest L2 norm score highest. */
export const knormScorer = (): CacheOnlyScorer =>
  new CacheOnlyScorer('knorm', () => (head, d) => {
    const s = new Float64Array(head.length);
    for (let j = 0; j < head.length; j++) {
      let ss = 0;
      for (let i = 0; i < d; i++) ss += head.keys[j * d + i] * head.keys[j * d + i];
      s[j] = -Math.sqrt(ss);
    }
    return s;
  });
