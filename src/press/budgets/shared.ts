import { topK } from '../topk.js';
import type { AllocationContext, Allocator, HeadScores } from '../types.js';

/**
 * The candidate slots of several heads pooled and given to the best scores among them: `layer` shares the
 * Hkv x (B - w) slots of each layer among its heads (DefensiveKV), `model` the NL x Hkv x (B - w) slots of the
 * whole model among every head (Layer-DefensiveKV). Ties: the later layer, head and position first.
 */
export class SharedAllocator implements Allocator {
  readonly name: string;

  constructor(readonly scope: 'layer' | 'model') {
    this.name = `shared-${scope}`;
  }

  allocate(scores: HeadScores, ctx: AllocationContext): Int32Array[][] {
    const C = ctx.budget - ctx.window;
    if (this.scope === 'layer') return scores.map((layer) => shareAmong([layer], C)[0]);
    return shareAmong(scores, C);
  }
}

/** Top (heads x C) over the flattened scores of `layers`, split back per layer and head. */
function shareAmong(layers: Float64Array[][], C: number): Int32Array[][] {
  const heads = layers.flat();
  const n = heads[0].length;
  const flat = new Float64Array(heads.length * n);
  heads.forEach((s, i) => flat.set(s, i * n));
  const kept: number[][] = heads.map(() => []);
  for (const idx of topK(flat, heads.length * Math.min(C, n))) kept[Math.floor(idx / n)].push(idx % n);
  let i = 0;
  return layers.map((layer) => layer.map(() => Int32Array.from(kept[i++])));
}
