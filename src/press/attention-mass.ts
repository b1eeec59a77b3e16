import type { Kernels } from '../kernels/types.js';

/** The keys of one KV head: compact [n, d] rows sorted by ascending position. */
export interface HeadKeys {
  keys: Float32Array;
  positions: Int32Array;
  n: number;
}

/** Rows of queries [rows, H, d] and, per row, the last key position it may see. */
export interface QueryRows {
  queries: Float32Array;
  rows: number;
  /** row r sees the keys whose position <= visibleUpTo[r] */
  visibleUpTo: Int32Array;
}

/** Number of leading keys with position <= p (positions ascending). */
export function countVisible(positions: Int32Array, n: number, p: number): number {
  let lo = 0,
    hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (positions[mid] <= p) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Scratch buffers reused across calls: a fresh multi-megabyte array per call costs more in page faults than
 * the product written into it.
 */
const scratch = {
  buffers: new Map<string, Float32Array>(),
  floats(name: string, n: number): Float32Array {
    let b = this.buffers.get(name);
    if (!b || b.length < n) {
      b = new Float32Array(n);
      this.buffers.set(name, b);
    }
    return b;
  },
};

/** Keeps the score product of one block small enough to stay in cache-friendly memory. */
const MAX_BLOCK_FLOATS = 1 << 21;

/**
 * For the query heads `firstHead .. firstHead + group - 1` (one GQA group), add to `out[g][j]` the softmax
 * attention each query row pays to key j: out[g][j] += sum_r A[r, g, j], the softmax running over the keys
 * row r may see. Products are sgemm blocks [rows x group, visible keys]; the softmaxes run in the kernels
 * (softmaxRowsAccumulate: AVX-512 in the native addon).
 */
export function accumulateAttention(
  k: Kernels,
  q: QueryRows,
  numHeads: number,
  headDim: number,
  firstHead: number,
  group: number,
  head: HeadKeys,
  out: Float64Array[],
  scale = 1 / Math.sqrt(headDim),
): void {
  const d = headDim;
  const n = head.n;
  const rowStride = numHeads * d;
  const rowsPerBlock = Math.max(1, Math.min(q.rows, Math.floor(MAX_BLOCK_FLOATS / Math.max(1, group * n))));
  const qBlock = scratch.floats('q', rowsPerBlock * group * d);
  const s = scratch.floats('s', rowsPerBlock * group * Math.max(1, n));
  const visible = new Int32Array(rowsPerBlock);
  const sums = scratch.floats('sums', group * Math.max(1, n));
  for (let r0 = 0; r0 < q.rows; r0 += rowsPerBlock) {
    const m = Math.min(rowsPerBlock, q.rows - r0);
    let width = 0;
    for (let r = 0; r < m; r++) {
      visible[r] = countVisible(head.positions, head.n, q.visibleUpTo[r0 + r]);
      if (visible[r] > width) width = visible[r];
    }
    if (width === 0) continue;
    for (let r = 0; r < m; r++) {
      for (let g = 0; g < group; g++) {
        const src = (r0 + r) * rowStride + (firstHead + g) * d;
        qBlock.set(q.queries.subarray(src, src + d), (r * group + g) * d);
      }
    }
    // s[m*group, width] = scale * Q . K^T over the keys any row of the block sees
    k.sgemm(false, true, m * group, width, d, scale, qBlock, d, head.keys, d, 0, s, width);
    sums.fill(0, 0, group * width);
    k.softmaxRowsAccumulate(s, m, group, width, visible, sums);
    for (let g = 0; g < group; g++) {
      const o = out[g];
      for (let j = 0; j < width; j++) o[j] += sums[g * width + j];
    }
  }
}
