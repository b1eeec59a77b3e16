/** Learning rate: linear warm-up to `peak`, then cosine decay to `peak * minRatio` at `total`. */
export interface LrSchedule {
  peak: number;
  warmup: number;
  total: number;
  minRatio: number;
}

export function learningRate(s: LrSchedule, step: number): number {
  if (step < s.warmup) return (s.peak * (step + 1)) / s.warmup;
  const progress = Math.min(1, (step - s.warmup) / Math.max(1, s.total - s.warmup));
  const min = s.peak * s.minRatio;
  return min + 0.5 * (s.peak - min) * (1 + Math.cos(Math.PI * progress));
}
