import { assert } from '../errors.js';
import { resolveBudget, type BudgetSpec } from './budget-spec.js';
import { keepAllPlan } from './select-cache.js';
import type { Allocator, CaptureRequest, KeepPlan, PrefillRun, Press, Scorer } from './types.js';

function padded(s: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n).fill(-Infinity);
  out.set(s);
  return out;
}

/**
 * A method as a composition: a scorer (with its query sources) ranks the candidate entries, an allocator
 * decides how many each head keeps, and the last `window` entries are kept as they are. The prompt cache is
 * the full one, or one compressed chunk by chunk whose newest chunk is whole (heads of different lengths).
 */
export class ScorePress implements Press {
  readonly wholePrompt?: string;

  constructor(
    readonly name: string,
    readonly scorer: Scorer,
    readonly allocator: Allocator,
    readonly budget: BudgetSpec,
  ) {
    this.wholePrompt = scorer.wholePrompt;
  }

  capture(promptLength: number): CaptureRequest {
    // nothing is scored when the prompt fits in the budget
    if (promptLength <= resolveBudget(this.budget, promptLength)) return {};
    return this.scorer.capture(promptLength);
  }

  async compress(run: PrefillRun): Promise<KeepPlan> {
    const cache = run.cache;
    const L = run.promptLength;
    const B = resolveBudget(this.budget, L);
    let longest = 0;
    for (const layer of cache.layers) for (const h of layer) longest = Math.max(longest, h.length);
    if (longest <= B) return keepAllPlan(cache);
    // a ratio may give a budget below the window: the kept window shrinks to the budget
    const window = Math.min(this.scorer.window, B);
    const last = run.startPosition + L - 1;
    for (const layer of cache.layers)
      for (const h of layer)
        assert(h.length >= window && (window === 0 || h.positions[h.length - 1] === last), 'every head ends with the whole window');
    const scores = await this.scorer.score(run, window, B);
    // heads of different lengths (a chunked prompt): the allocators see equal lengths, the missing candidates at -infinity
    const candidates = longest - window;
    const even = scores.map((layer) => layer.map((s) => (s.length === candidates ? s : padded(s, candidates))));
    const chosen = this.allocator.allocate(even, { budget: B, window, length: longest, numLayers: cache.numLayers });
    return chosen.map((layer, l) =>
      layer.map((picked, h) => {
        const head = cache.head(l, h);
        const n = head.length - window;
        const idx = picked.length && picked[picked.length - 1] >= n ? picked.filter((j) => j < n) : picked;
        const out = new Int32Array(idx.length + window);
        for (let i = 0; i < idx.length; i++) out[i] = head.positions[idx[i]];
        for (let i = 0; i < window; i++) out[idx.length + i] = head.positions[n + i];
        return out;
      }),
    );
  }
}
