import type { BudgetSpec } from './budget-spec.js';
import { UniformAllocator } from './budgets/uniform.js';
import type { OptionSpecs, OptionValues } from './option-spec.js';
import { ScorePress } from './score-press.js';
import type { Allocator, Press, Scorer } from './types.js';

/** How most methods are built: a scorer ranks the candidate entries, an allocator says how many each head keeps. */
export interface Composition {
  scorer: Scorer;
  allocator: Allocator;
}

/**
 * One eviction method, described by itself: its options (type, default, range, help) and how it is built.
 * The common case gives `scorer` only (and the allocator keeps the same number of entries in every head);
 * `make` is for a press that is not a scorer with an allocator.
 */
export interface Method<O extends OptionSpecs = OptionSpecs> {
  readonly name: string;
  readonly summary: string;
  /** options taken besides the budget or ratio */
  readonly options: O;
  /** false only for `full`, which keeps everything */
  readonly needsBudget?: boolean;
  /** how the method ranks entries: a method with a scorer and the default allocator can be wrapped */
  scorer?(o: OptionValues<O>, budget: BudgetSpec): Scorer;
  /** how many candidates each head keeps (default: the same number in every head) */
  allocator?(o: OptionValues<O>): Allocator;
  make?(o: OptionValues<O>, budget: BudgetSpec): Press;
}

/**
 * A method that wraps another one (AdaKV around SnapKV): its own options, plus `scorer` naming the wrapped
 * method, whose options it takes too. It turns the wrapped composition into its own.
 */
export interface Wrapper<O extends OptionSpecs = OptionSpecs> {
  readonly name: string;
  readonly summary: string;
  readonly options: O;
  /** the wrapped method when `scorer` is not given */
  readonly defaultScorer: string;
  wrap(inner: Composition, o: OptionValues<O>, budget: BudgetSpec): Composition;
}

/** Type-checks a method's builders against its own options. */
export function defineMethod<O extends OptionSpecs>(m: Method<O>): Method<O> {
  return m;
}

export function defineWrapper<O extends OptionSpecs>(w: Wrapper<O>): Wrapper<O> {
  return w;
}

/** A method's composition with its options' values: its scorer and its allocator (uniform unless it says). */
export function composition<O extends OptionSpecs>(m: Method<O>, o: OptionValues<O>, budget: BudgetSpec): Composition {
  if (!m.scorer) throw new Error(`internal error: method ${m.name} has no scorer`);
  return { scorer: m.scorer(o, budget), allocator: m.allocator ? m.allocator(o) : new UniformAllocator() };
}

/** The press of a method with its options' values. */
export function pressOf<O extends OptionSpecs>(m: Method<O>, o: OptionValues<O>, budget: BudgetSpec): Press {
  if (m.make) return m.make(o, budget);
  const c = composition(m, o, budget);
  return new ScorePress(m.name, c.scorer, c.allocator, budget);
}
