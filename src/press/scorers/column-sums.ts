import { assert } from '../../errors.js';
import { reduceHeads, type GqaReduce } from '../gqa.js';
import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';

/**
 * H2O (one-shot): the attention every prompt query pays to each key under the causal mask, summed over the
 * queries (recorded blockwise during the prefill), reduced over the GQA group; no pooling. Chunk by chunk, an
 * entry's sum is what every query so far paid it while it was kept (H2O's own accumulation).
 */
export class ColumnSumScorer implements Scorer {
  readonly name = 'h2o';

  constructor(
    readonly window: number,
    readonly gqa: GqaReduce,
  ) {}

  capture(): CaptureRequest {
    return { columnSums: true };
  }

  score(run: PrefillRun, window: number): HeadScores {
    const sums = run.captured.columnSums;
    assert(sums !== null, 'column sums were recorded');
    const { numHeads: H, numKvHeads: Hkv } = run.model.config;
    const G = H / Hkv;
    const L = run.promptLength;
    return sums.map((s, l) => {
      const heads: Float64Array[] = [];
      for (let h = 0; h < Hkv; h++) {
        const head = run.cache.head(l, h);
        const candidates = head.length - window;
        const group: Float64Array[] = [];
        for (let g = 0; g < G; g++) {
          const row = (h * G + g) * L - run.startPosition;
          const x = new Float64Array(candidates);
          for (let j = 0; j < candidates; j++) x[j] = s[row + head.positions[j]];
          group.push(x);
        }
        heads.push(reduceHeads(group, this.gqa));
      }
      return heads;
    });
  }
}
