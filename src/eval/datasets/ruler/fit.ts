/**
 * RULER sizes each task by binary search: the largest haystack size whose prompt (plus the tokens to
 * generate) fits the target length. `tokensFor(n)` builds a sample of size n and counts its tokens.
 * Returns 0 when even `lower` does not fit.
 */
export function largestFitting(tokensFor: (n: number) => number, max: number, lower = 1, start = 64): number {
  if (tokensFor(lower) > max) return 0;
  let lo = lower; // fits
  let hi = Math.max(start, lower + 1);
  while (tokensFor(hi) <= max) {
    lo = hi;
    hi *= 2;
    if (hi > 1 << 24) return lo;
  }
  // lo fits, hi does not
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (tokensFor(mid) <= max) lo = mid;
    else hi = mid;
  }
  return lo;
}
