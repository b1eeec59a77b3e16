import { join } from 'node:path';
import { defaultModelDir } from '../../paths.js';
import type { BudgetSpec } from '../budget-spec.js';
import { pooled, window } from '../common-options.js';
import { defineMethod } from '../method.js';
import { booleanOption, fileOption, type OptionValues } from '../option-spec.js';
import { LookaheadQueries } from '../queries/lookahead.js';
import { SoftTokenQueries } from '../queries/soft-tokens.js';
import { loadSoftTokens } from '../queries/soft-tokens-file.js';
import { WindowQueries } from '../queries/window.js';
import { AttentionScorer } from '../scorers/attention.js';
import type { QuerySource } from '../types.js';
import { lookaheadOptions, stage1Press } from './laq.js';

/** The soft tokens delivered for the embedded reference model: the default of `soft`. */
export const DEFAULT_SOFT_FILE = join(defaultModelDir, 'judgeq.safetensors');

const soft = fileOption({
  defaultFile: DEFAULT_SOFT_FILE,
  help: "trained soft-token file (default: judgeq.safetensors in the model's folder, else the embedded model's)",
});
const noWindow = booleanOption({ help: 'keep no prompt window (w = 0)' });
/** without a window of its own, the window is kept only where stage 1 keeps one */
const windowUnlessNone = {
  ...window,
  kept: (o: Record<string, unknown>) => !o.noWindow || (o.stage1 !== undefined && o.stage1 !== 'streaming'),
};

const judgeqOptions = { soft, ...pooled, window: windowUnlessNone, noWindow };
const withLookahead = { ...lookaheadOptions, ...judgeqOptions };
const withWindow = { soft, ...pooled };

type Variant = 'judgeq' | 'judgeq+laq' | 'judgeq+window';
type AllOptions = OptionValues<typeof withWindow> & Partial<OptionValues<typeof withLookahead>>;

/**
 * Judge Q's scorer: the soft tokens' queries (plus LAQ's lookahead queries, or the prompt window's queries),
 * pooled and reduced over GQA as SnapKV; the last `window` prompt entries are kept unless no-window.
 */
export function judgeqScorer(variant: Variant, o: AllOptions, b: BudgetSpec): AttentionScorer {
  const file = loadSoftTokens(o.soft === '' ? DEFAULT_SOFT_FILE : o.soft);
  const sources: QuerySource[] = [new SoftTokenQueries(file)];
  if (variant === 'judgeq+laq') sources.push(new LookaheadQueries(o.lookahead!, stage1Press(o as OptionValues<typeof withLookahead>, b)));
  if (variant === 'judgeq+window') sources.unshift(new WindowQueries(o.window));
  const w = variant !== 'judgeq+window' && o.noWindow ? 0 : o.window;
  return new AttentionScorer({ name: variant, sources, window: w, kernel: o.kernel, pool: o.pool, gqa: o.gqa });
}

export const judgeq = defineMethod({
  name: 'judgeq',
  summary: 'Judge Q: scores from the queries of trained soft tokens fed after the prompt (`soft` FILE)',
  options: judgeqOptions,
  scorer: (o, b) => judgeqScorer('judgeq', o, b),
});

export const judgeqLaq = defineMethod({
  name: 'judgeq+laq',
  summary: 'Judge Q soft-token queries together with LAQ lookahead queries',
  options: withLookahead,
  scorer: (o, b) => judgeqScorer('judgeq+laq', o, b),
});

export const judgeqWindow = defineMethod({
  name: 'judgeq+window',
  summary: 'Judge Q soft-token queries together with the last `window` prompt queries (SnapKV)',
  options: withWindow,
  scorer: (o, b) => judgeqScorer('judgeq+window', o, b),
});
