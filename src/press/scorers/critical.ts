import { kernels } from '../../kernels/index.js';
import { topK } from '../topk.js';
import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';
import { projectedValueNorms } from './projected-values.js';

/**
 * CriticalKV's two stages around another scorer: the top `firstStage` share of the candidate slots goes to the
 * wrapped scores as they are (kept at +infinity); the rest are ranked by (score + epsilon) * ||W_o v||_1.
 */
export class CriticalScorer implements Scorer {
  readonly name: string;
  readonly window: number;
  readonly wholePrompt?: string;

  constructor(
    readonly inner: Scorer,
    readonly epsilon: number,
    readonly firstStage: number,
  ) {
    this.name = `criticalkv(${inner.name})`;
    this.window = inner.window;
    this.wholePrompt = inner.wholePrompt;
  }

  capture(promptLength: number): CaptureRequest {
    return this.inner.capture(promptLength);
  }

  async score(run: PrefillRun, window: number, budget: number): Promise<HeadScores> {
    const scores = await this.inner.score(run, window, budget);
    const first = Math.floor((budget - window) * this.firstStage);
    const k = kernels();
    return scores.map((layer, l) =>
      layer.map((s, kv) => {
        const norms = projectedValueNorms(run, k, l, kv, s.length);
        const out = new Float64Array(s.length);
        for (let j = 0; j < s.length; j++) out[j] = (s[j] + this.epsilon) * norms[j];
        for (const j of topK(s, first)) out[j] = Infinity;
        return out;
      }),
    );
  }
}
