export type PoolKind = 'max' | 'avg';

/**
 * 1-D pooling along positions, stride 1, padding floor(k/2), same length out (as torch's max_pool1d /
 * avg_pool1d in SnapKV and kvpress): out[j] pools x[j - floor(k/2) .. j - floor(k/2) + k - 1]. Max ignores
 * the padding; avg counts it as zeros (count_include_pad), so it always divides by k.
 * Only the first `n` entries of `x` are read (the candidates), so scores never leak in from the window. `out`
 * (n entries) may be given to reuse.
 */
export function pool1d(x: Float64Array, n: number, kernel: number, kind: PoolKind, out = new Float64Array(n)): Float64Array {
  if (kernel <= 1) {
    out.set(x.subarray(0, n));
    return out;
  }
  const left = Math.floor(kernel / 2);
  for (let j = 0; j < n; j++) {
    const a = Math.max(0, j - left);
    const b = Math.min(n - 1, j - left + kernel - 1);
    if (kind === 'max') {
      let m = -Infinity;
      for (let i = a; i <= b; i++) if (x[i] > m) m = x[i];
      out[j] = m;
    } else {
      let s = 0;
      for (let i = a; i <= b; i++) s += x[i];
      out[j] = s / kernel;
    }
  }
  return out;
}
