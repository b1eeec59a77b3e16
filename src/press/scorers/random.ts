import { Rng } from '../../util/rng.js';
import { CacheOnlyScorer } from './cache-only.js';

/** Random: a seeded uniform score per entry, drawn layer by layer, head by head, position by position. */
export const randomScorer = (seed: number): CacheOnlyScorer =>
  new CacheOnlyScorer('random', () => {
    const rng = new Rng(seed);
    return (head) => {
      const s = new Float64Array(head.length);
      for (let j = 0; j < head.length; j++) s[j] = rng.next();
      return s;
    };
  });
