import type { BudgetSpec } from '../budget-spec.js';
import { gqa, kernel, pool, sinks, window } from '../common-options.js';
import { defineMethod, pressOf } from '../method.js';
import { booleanOption, choiceOption, intOption, type OptionValues } from '../option-spec.js';
import { LookaheadQueries } from '../queries/lookahead.js';
import { WindowQueries } from '../queries/window.js';
import { AttentionScorer } from '../scorers/attention.js';
import type { Press, QuerySource } from '../types.js';
import { h2o } from './h2o.js';
import { snapkv } from './snapkv.js';
import { streaming } from './streaming.js';

const stage1 = choiceOption(['snapkv', 'streaming', 'h2o'] as const, {
  default: 'snapkv',
  help: 'the cheap press of stage 1, on whose cache the pseudo tokens are decoded',
});

/** LAQ's options, shared by the methods that decode lookahead tokens (Judge Q + LAQ). */
export const lookaheadOptions = {
  lookahead: intOption({ default: 8, min: 1, help: 'pseudo tokens decoded ahead' }),
  stage1,
  // stage 1 keeps a window (snapkv, h2o) or sinks (streaming)
  window: { ...window, kept: (o: Record<string, unknown>) => o.stage1 !== 'streaming' },
  sinks: { ...sinks, kept: (o: Record<string, unknown>) => o.stage1 === 'streaming' },
  kernel,
  pool,
  gqa,
};

/** LAQ's cheap stage-1 press, with the same budget. */
export function stage1Press(o: OptionValues<typeof lookaheadOptions>, b: BudgetSpec): Press {
  if (o.stage1 === 'streaming') return pressOf(streaming, o, b);
  return o.stage1 === 'h2o' ? pressOf(h2o, o, b) : pressOf(snapkv, o, b);
}

const laqOptions = {
  ...lookaheadOptions,
  referenceMask: booleanOption({ help: "the reference code's stage-2 mask, for comparison" }),
};

/**
 * LAQ (w2 = 0) and LAQ++: score the full prompt cache with the queries of pseudo tokens decoded ahead on a
 * stage-1 cache (plus, for LAQ++, the last w2 prompt queries); keep the top entries plus the last w2.
 */
export function laqScorer(o: OptionValues<typeof laqOptions>, b: BudgetSpec, w2: number): AttentionScorer {
  const sources: QuerySource[] = [];
  if (w2 > 0) sources.push(new WindowQueries(w2));
  sources.push(new LookaheadQueries(o.lookahead, stage1Press(o, b)));
  return new AttentionScorer({
    name: w2 > 0 ? 'laq++' : 'laq',
    sources,
    window: w2,
    kernel: o.kernel,
    pool: o.pool,
    gqa: o.gqa,
    mask: o.referenceMask ? 'aligned' : 'positions',
  });
}

export const laq = defineMethod({
  name: 'laq',
  summary: 'LAQ: scores from the queries of `lookahead` pseudo tokens decoded on a stage-1 cache',
  options: laqOptions,
  scorer: (o, b) => laqScorer(o, b, 0),
});

export const laqPlus = defineMethod({
  name: 'laq++',
  summary: 'LAQ++: the last `w2` prompt queries plus the lookahead queries; keeps the last w2 tokens',
  options: { ...laqOptions, w2: intOption({ default: 8, min: 1, kept: true, help: 'prompt-window queries in stage 2, kept too' }) },
  scorer: (o, b) => laqScorer(o, b, o.w2),
});
