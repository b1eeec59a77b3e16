import type { BudgetSpec } from './budget-spec.js';
import type { PressOptionKey, ResolvedOptions } from './options.js';
import type { Press, Scorer } from './types.js';

/** One eviction method: its name, the options it takes and how it is built. */
export interface MethodDef {
  readonly name: string;
  readonly summary: string;
  /** options taken besides --budget / --ratio */
  readonly options: readonly PressOptionKey[];
  /** false only for `full`, which keeps everything */
  readonly needsBudget: boolean;
  /** the method's scorer, for methods AdaKV can wrap */
  scorer?(o: ResolvedOptions, budget: BudgetSpec): Scorer;
  make(o: ResolvedOptions, budget: BudgetSpec): Press;
}
