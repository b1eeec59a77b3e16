import type { BudgetSpec } from '../budget-spec.js';
import { UniformAllocator } from '../budgets/uniform.js';
import type { MethodDef } from '../method.js';
import type { ResolvedOptions } from '../options.js';
import { LookaheadQueries } from '../queries/lookahead.js';
import { WindowQueries } from '../queries/window.js';
import { ScorePress } from '../score-press.js';
import { AttentionScorer } from '../scorers/attention.js';
import type { Press, QuerySource } from '../types.js';
import { h2o } from './h2o.js';
import { snapkv } from './snapkv.js';
import { streaming } from './streaming.js';

/** LAQ's cheap stage-1 press, with the same budget. */
export function stage1Press(o: ResolvedOptions, b: BudgetSpec): Press {
  const def = o.stage1 === 'streaming' ? streaming : o.stage1 === 'h2o' ? h2o : snapkv;
  return def.make(o, b);
}

/**
 * LAQ (w2 = 0) and LAQ++: score the full prompt cache with the queries of pseudo tokens decoded ahead on a
 * stage-1 cache (plus, for LAQ++, the last w2 prompt queries); keep the top entries plus the last w2.
 */
export function laqScorer(o: ResolvedOptions, b: BudgetSpec, w2: number): AttentionScorer {
  const sources: QuerySource[] = [];
  if (w2 > 0) sources.push(new WindowQueries(w2));
  sources.push(new LookaheadQueries(o.lookahead, stage1Press(o, b)));
  return new AttentionScorer({
    name: w2 > 0 ? 'laq++' : 'laq', sources, window: w2, kernel: o.kernel, pool: o.pool, gqa: o.gqa,
    mask: o.referenceMask ? 'aligned' : 'positions',
  });
}

const common = ['lookahead', 'stage1', 'window', 'sinks', 'kernel', 'pool', 'gqa', 'referenceMask'] as const;

export const laq: MethodDef = {
  name: 'laq',
  summary: 'LAQ: scores from the queries of --lookahead pseudo tokens decoded on a stage-1 cache',
  options: common,
  needsBudget: true,
  scorer: (o, b) => laqScorer(o, b, 0),
  make: (o, b) => new ScorePress('laq', laqScorer(o, b, 0), new UniformAllocator(), b),
};

export const laqPlus: MethodDef = {
  name: 'laq++',
  summary: 'LAQ++: the last --w2 prompt queries plus the lookahead queries; keeps the last w2 tokens',
  options: [...common, 'w2'],
  needsBudget: true,
  scorer: (o, b) => laqScorer(o, b, o.w2),
  make: (o, b) => new ScorePress('laq++', laqScorer(o, b, o.w2), new UniformAllocator(), b),
};
