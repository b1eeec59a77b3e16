/** The size of the compressed cache: entries per KV head per layer, or the fraction of the prompt removed. */
export type BudgetSpec = { budget: number } | { ratio: number };

/**
 * Entries each KV head keeps for a prompt of `length` tokens: B, or round(L (1 - r)) with at least one.
 * When the result is >= L nothing is evicted.
 */
export function resolveBudget(spec: BudgetSpec, length: number): number {
  if ('budget' in spec) return spec.budget;
  return Math.max(1, Math.round(length * (1 - spec.ratio)));
}

export function describeBudget(spec: BudgetSpec): string {
  return 'budget' in spec ? `budget ${spec.budget}` : `ratio ${spec.ratio}`;
}
