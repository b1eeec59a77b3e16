import { topK } from '../topk.js';
import type { AllocationContext, Allocator, HeadScores } from '../types.js';

/** PyramidKV's ratio between the largest and the smallest layer budget. */
export const PYRAMID_BETA = 20;

/**
 * PyramidKV's candidate budgets per layer (window excluded): with C = B - w, min = C / beta, max = 2C - min
 * (if max >= L - w: max = L - w, min = 2C - max), C_l = max - l (max - min) / (NL - 1). The real-valued C_l
 * are rounded down and the entries left over go to the layers with the largest fractional parts (earlier
 * layers first on ties), so the total stays NL x C exactly.
 */
export function pyramidBudgets(budget: number, window: number, length: number, numLayers: number, beta = PYRAMID_BETA): number[] {
  const C = budget - window;
  const cap = length - window;
  if (numLayers === 1) return [Math.min(C, cap)];
  let min = C / beta;
  let max = 2 * C - min;
  if (max >= cap) {
    max = cap;
    min = 2 * C - max;
  }
  const real = Array.from({ length: numLayers }, (_, l) => max - (l * (max - min)) / (numLayers - 1));
  const out = real.map((x) => Math.min(cap, Math.max(0, Math.floor(x + 1e-9))));
  let left = numLayers * C - out.reduce((a, b) => a + b, 0);
  const order = real.map((x, l) => ({ l, frac: x - Math.floor(x + 1e-9) })).sort((a, b) => b.frac - a.frac || a.l - b.l);
  for (let i = 0; left > 0 && i < order.length * 2; i++) {
    const l = order[i % order.length].l;
    if (out[l] < cap) {
      out[l]++;
      left--;
    }
  }
  return out;
}

/** PyramidKV: budgets falling linearly from the first layer to the last with the same total. */
export class PyramidAllocator implements Allocator {
  readonly name = 'pyramid';

  allocate(scores: HeadScores, ctx: AllocationContext): Int32Array[][] {
    const budgets = pyramidBudgets(ctx.budget, ctx.window, ctx.length, ctx.numLayers);
    return scores.map((layer, l) => layer.map((s) => topK(s, budgets[l])));
  }
}
