import { assert } from '../errors.js';
import { resolveBudget, type BudgetSpec } from './budget-spec.js';
import { keepAllPlan } from './select-cache.js';
import type { Allocator, CaptureRequest, KeepPlan, PrefillRun, Press, Scorer } from './types.js';

/**
 * A method as a composition: a scorer (with its query sources) ranks the candidate entries, an allocator
 * decides how many each head keeps, and the last `window` entries are kept as they are.
 */
export class ScorePress implements Press {
  constructor(
    readonly name: string,
    readonly scorer: Scorer,
    readonly allocator: Allocator,
    readonly budget: BudgetSpec,
  ) {}

  capture(promptLength: number): CaptureRequest {
    // nothing is scored when the prompt fits in the budget
    if (promptLength <= resolveBudget(this.budget, promptLength)) return {};
    return this.scorer.capture(promptLength);
  }

  async compress(run: PrefillRun): Promise<KeepPlan> {
    const cache = run.cache;
    const L = run.promptLength;
    const B = resolveBudget(this.budget, L);
    if (L <= B) return keepAllPlan(cache);
    for (const layer of cache.layers)
      for (const h of layer) assert(h.length === L, 'a full prompt cache (one entry per prompt token and head)');
    // a ratio may give a budget below the window: the kept window shrinks to the budget
    const window = Math.min(this.scorer.window, B);
    const scores = await this.scorer.score(run, window, B);
    const chosen = this.allocator.allocate(scores, { budget: B, window, length: L, numLayers: cache.numLayers });
    return chosen.map((layer, l) =>
      layer.map((idx, h) => {
        const head = cache.head(l, h);
        const out = new Int32Array(idx.length + window);
        for (let i = 0; i < idx.length; i++) out[i] = head.positions[idx[i]];
        for (let i = 0; i < window; i++) out[idx.length + i] = head.positions[L - window + i];
        return out;
      }),
    );
  }
}
