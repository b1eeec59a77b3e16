import { join } from 'node:path';
import { defaultModelDir } from '../../paths.js';
import type { BudgetSpec } from '../budget-spec.js';
import { UniformAllocator } from '../budgets/uniform.js';
import type { MethodDef } from '../method.js';
import type { ResolvedOptions } from '../options.js';
import { LookaheadQueries } from '../queries/lookahead.js';
import { SoftTokenQueries } from '../queries/soft-tokens.js';
import { loadSoftTokens } from '../queries/soft-tokens-file.js';
import { WindowQueries } from '../queries/window.js';
import { ScorePress } from '../score-press.js';
import { AttentionScorer } from '../scorers/attention.js';
import type { QuerySource } from '../types.js';
import { stage1Press } from './laq.js';

/** The soft tokens delivered for the embedded reference model: the default of --soft. */
export const DEFAULT_SOFT_FILE = join(defaultModelDir, 'judgeq.safetensors');

export type JudgeqVariant = 'judgeq' | 'judgeq+laq' | 'judgeq+window';

/**
 * Judge Q's scorer: the soft tokens' queries (plus LAQ's lookahead queries, or the prompt window's queries),
 * pooled and reduced over GQA as SnapKV; the last `window` prompt entries are kept unless --no-window.
 */
export function judgeqScorer(variant: JudgeqVariant, o: ResolvedOptions, b: BudgetSpec): AttentionScorer {
  const soft = loadSoftTokens(o.soft === '' ? DEFAULT_SOFT_FILE : o.soft);
  const sources: QuerySource[] = [new SoftTokenQueries(soft)];
  if (variant === 'judgeq+laq') sources.push(new LookaheadQueries(o.lookahead, stage1Press(o, b)));
  if (variant === 'judgeq+window') sources.unshift(new WindowQueries(o.window));
  const window = variant !== 'judgeq+window' && o.noWindow ? 0 : o.window;
  return new AttentionScorer({ name: variant, sources, window, kernel: o.kernel, pool: o.pool, gqa: o.gqa });
}

function def(variant: JudgeqVariant, summary: string, options: MethodDef['options']): MethodDef {
  return {
    name: variant,
    summary,
    options,
    needsBudget: true,
    scorer: (o, b) => judgeqScorer(variant, o, b),
    make: (o, b) => new ScorePress(variant, judgeqScorer(variant, o, b), new UniformAllocator(), b),
  };
}

export const judgeq = def(
  'judgeq', 'Judge Q: scores from the queries of trained soft tokens fed after the prompt (--soft FILE)',
  ['soft', 'window', 'noWindow', 'kernel', 'pool', 'gqa'],
);

export const judgeqLaq = def(
  'judgeq+laq', 'Judge Q soft-token queries together with LAQ lookahead queries',
  ['soft', 'window', 'noWindow', 'kernel', 'pool', 'gqa', 'lookahead', 'stage1', 'sinks'],
);

export const judgeqWindow = def(
  'judgeq+window', 'Judge Q soft-token queries together with the last --window prompt queries (SnapKV)',
  ['soft', 'window', 'kernel', 'pool', 'gqa'],
);
