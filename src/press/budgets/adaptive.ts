import { topK } from '../topk.js';
import type { AllocationContext, Allocator, HeadScores } from '../types.js';

/** AdaKV's share of each head's budget that the head keeps on its own. */
export const ADAKV_ALPHA = 0.2;

/**
 * AdaKV: inside one layer the Hkv x C candidate slots (C = B - w) are shared among heads. Each head first
 * keeps its own top floor(alpha C); the rest go to the best remaining scores of the whole layer (ties: later
 * position first, then the lower head). Heads end with different lengths.
 */
export class AdaptiveAllocator implements Allocator {
  readonly name = 'adaptive';

  constructor(readonly alpha = ADAKV_ALPHA) {}

  allocate(scores: HeadScores, ctx: AllocationContext): Int32Array[][] {
    const C = ctx.budget - ctx.window;
    const safe = Math.floor(this.alpha * C);
    return scores.map((layer) => allocateLayer(layer, C, safe));
  }
}

function allocateLayer(layer: Float64Array[], C: number, safe: number): Int32Array[] {
  const Hkv = layer.length;
  const n = layer[0].length;
  const chosen = layer.map(() => new Uint8Array(n));
  for (let h = 0; h < Hkv; h++) for (const j of topK(layer[h], safe)) chosen[h][j] = 1;
  const rest = Hkv * Math.min(C, n) - Hkv * Math.min(safe, n);
  if (rest > 0) {
    // pool the unchosen entries of every head, ordered by position then head so that topK's
    // later-index tie rule means "later position, then lower head"
    const flat = new Float64Array(n * Hkv);
    for (let j = 0; j < n; j++)
      for (let h = 0; h < Hkv; h++) {
        flat[j * Hkv + (Hkv - 1 - h)] = chosen[h][j] ? -Infinity : layer[h][j];
      }
    const available = n * Hkv - Hkv * Math.min(safe, n);
    const picked = topK(flat, Math.min(rest, available));
    for (const f of picked) {
      const j = Math.floor(f / Hkv);
      const h = Hkv - 1 - (f % Hkv);
      chosen[h][j] = 1;
    }
  }
  return chosen.map((c) => {
    let count = 0;
    for (let j = 0; j < n; j++) count += c[j];
    const out = new Int32Array(count);
    let i = 0;
    for (let j = 0; j < n; j++) if (c[j]) out[i++] = j;
    return out;
  });
}
