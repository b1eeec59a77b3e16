import { Rng } from '../../util/rng.js';
import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';

/** Random: a seeded uniform score per entry, drawn layer by layer, head by head, position by position. */
export class RandomScorer implements Scorer {
  readonly name = 'random';
  readonly window = 0;

  constructor(readonly seed: number) {}

  capture(): CaptureRequest {
    return {};
  }

  score(run: PrefillRun): HeadScores {
    const rng = new Rng(this.seed);
    return run.cache.layers.map((layer) =>
      layer.map((head) => {
        const s = new Float64Array(head.length);
        for (let j = 0; j < head.length; j++) s[j] = rng.next();
        return s;
      }),
    );
  }
}
