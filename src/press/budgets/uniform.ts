import { topK } from '../topk.js';
import type { AllocationContext, Allocator, HeadScores } from '../types.js';

/** The same budget for every KV head of every layer: top-(B - w) candidates. */
export class UniformAllocator implements Allocator {
  readonly name = 'uniform';

  allocate(scores: HeadScores, ctx: AllocationContext): Int32Array[][] {
    const c = ctx.budget - ctx.window;
    return scores.map((layer) => layer.map((s) => topK(s, c)));
  }
}
