/**
 * exp(x) for x <= 0 (softmax after subtracting the row maximum), 2-3x faster than Math.exp in the scoring
 * loops: x = -(32 a + b) ln2 / 32 + r with |r| <= ln2 / 64, so exp(x) = 2^-a 2^(-b/32) exp(r), exp(r) by its
 * degree-4 Taylor polynomial (relative error below 2e-12), the powers of two from tables. 0 below -708.
 */
export const EXP_K = 32 / Math.LN2;
export const EXP_STEP = Math.LN2 / 32;
/** 2^-a, a = 0 .. 1099 */
export const EXP_POW2 = Float64Array.from({ length: 1100 }, (_, i) => Math.pow(2, -i));
/** 2^(-b/32), b = 0 .. 31 */
export const EXP_FRAC = Float64Array.from({ length: 32 }, (_, i) => Math.pow(2, -i / 32));

export function expNonPositive(x: number): number {
  if (!(x >= -708)) return 0;
  const k = Math.round(x * EXP_K);
  const r = x - k * EXP_STEP;
  const m = -k;
  return (1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24))))) * EXP_POW2[m >> 5] * EXP_FRAC[m & 31];
}
