import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';

/** Knorm: keys with the smallest L2 norm score highest. */
export class KnormScorer implements Scorer {
  readonly name = 'knorm';
  readonly window = 0;

  capture(): CaptureRequest {
    return {};
  }

  score(run: PrefillRun): HeadScores {
    const d = run.cache.headDim;
    return run.cache.layers.map((layer) =>
      layer.map((head) => {
        const s = new Float64Array(head.length);
        for (let j = 0; j < head.length; j++) {
          let ss = 0;
          for (let i = 0; i < d; i++) ss += head.keys[j * d + i] * head.keys[j * d + i];
          s[j] = -Math.sqrt(ss);
        }
        return s;
      }),
    );
  }
}
