import { assert } from '../../errors.js';
import { reduceHeads, type GqaReduce } from '../gqa.js';
import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';

/**
 * H2O (one-shot): the attention every prompt query pays to each key under the causal mask, summed over the
 * queries (recorded blockwise during the prefill), reduced over the GQA group; no pooling.
 */
export class ColumnSumScorer implements Scorer {
  readonly name = 'h2o';
  readonly wholePrompt = 'its column sums are the attention every prompt query pays each entry of the full prompt cache';

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
    const candidates = L - window;
    return sums.map((s) => {
      const heads: Float64Array[] = [];
      for (let h = 0; h < Hkv; h++) {
        const group: Float64Array[] = [];
        for (let g = 0; g < G; g++) group.push(s.subarray((h * G + g) * L, (h * G + g) * L + candidates));
        heads.push(reduceHeads(group, this.gqa));
      }
      return heads;
    });
  }
}
