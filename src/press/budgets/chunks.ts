import type { AllocationContext, Allocator, HeadScores } from '../types.js';

/**
 * ChunkKV: the candidates are cut into chunks of `length` consecutive entries from the start (the last one
 * may be shorter); a chunk's score is the mean over its entries of the scores summed over the layer's KV
 * heads; whole chunks are kept, best first (ties: the later chunk), each one that still fits in the B - w
 * candidate slots. Every head of a layer keeps the same chunks; what no whole chunk fills stays unused.
 */
export class ChunkAllocator implements Allocator {
  readonly name = 'chunks';

  constructor(readonly length: number) {}

  allocate(scores: HeadScores, ctx: AllocationContext): Int32Array[][] {
    const C = ctx.budget - ctx.window;
    return scores.map((layer) => {
      const kept = this.layerChunks(layer, C);
      return layer.map(() => kept.slice());
    });
  }

  private layerChunks(layer: Float64Array[], C: number): Int32Array {
    const n = layer[0].length;
    if (C >= n) return Int32Array.from({ length: n }, (_, i) => i);
    const count = Math.ceil(n / this.length);
    const mean = new Float64Array(count);
    for (let c = 0; c < count; c++) {
      const from = c * this.length;
      const to = Math.min(n, from + this.length);
      let s = 0;
      for (const head of layer) for (let j = from; j < to; j++) s += head[j];
      mean[c] = s / (to - from);
    }
    const order = Array.from({ length: count }, (_, c) => c).sort((a, b) => mean[b] - mean[a] || b - a);
    const take = new Uint8Array(count);
    let left = C;
    for (const c of order) {
      const size = Math.min(n, (c + 1) * this.length) - c * this.length;
      if (size <= left) {
        take[c] = 1;
        left -= size;
      }
      if (left === 0) break;
    }
    const out: number[] = [];
    for (let c = 0; c < count; c++) if (take[c]) for (let j = c * this.length; j < Math.min(n, (c + 1) * this.length); j++) out.push(j);
    return Int32Array.from(out);
  }
}
