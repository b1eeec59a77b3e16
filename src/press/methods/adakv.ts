import { KvevictError } from '../../errors.js';
import type { BudgetSpec } from '../budget-spec.js';
import { AdaptiveAllocator } from '../budgets/adaptive.js';
import type { MethodDef } from '../method.js';
import type { ResolvedOptions } from '../options.js';
import { ScorePress } from '../score-press.js';
import type { Press } from '../types.js';

/** AdaKV around the scorer of `inner`: budgets shared among the heads of a layer. */
export function adakvPress(inner: MethodDef, o: ResolvedOptions, b: BudgetSpec): Press {
  if (!inner.scorer) throw new KvevictError(`--scorer ${inner.name} is not a scorer adakv can wrap`);
  return new ScorePress(`adakv(${inner.name})`, inner.scorer(o, b), new AdaptiveAllocator(o.alpha), b);
}

/** Options taken by adakv itself (the wrapped scorer's options are added by the registry). */
export const adakvOwnOptions = ['scorer', 'alpha'] as const;
