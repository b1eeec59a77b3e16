/**
 * Indices of the `k` largest scores, sorted ascending. Ties are broken toward the later index (recent
 * tokens first), so results are deterministic. Scores must not be NaN.
 */
export function topK(scores: Float64Array, k: number): Int32Array {
  const n = scores.length;
  if (k >= n) return Int32Array.from({ length: n }, (_, i) => i);
  if (k <= 0) return new Int32Array(0);
  // the k-th largest value by a native sort of a copy, then one pass from the end
  const sorted = Float64Array.from(scores).sort();
  const threshold = sorted[n - k];
  let above = 0;
  for (let i = n - k + 1; i < n; i++) if (sorted[i] > threshold) above++;
  let equalLeft = k - above;
  const out = new Int32Array(k);
  let m = k;
  for (let i = n - 1; i >= 0 && m > 0; i--) {
    const s = scores[i];
    if (s > threshold) out[--m] = i;
    else if (s === threshold && equalLeft > 0) {
      out[--m] = i;
      equalLeft--;
    }
  }
  return out;
}
