import type { OptionSpecs, ParsedOptions } from '../cli/args.js';
import { KvevictError } from '../errors.js';
import type { GqaReduce } from './gqa.js';
import type { PoolKind } from './pool.js';

/** Options of a press, as the library takes them (CLI names in `PRESS_OPTION_SPECS`). */
export interface PressOptions {
  /** entries kept per KV head per layer (window included) */
  budget?: number;
  /** fraction of the prompt removed: keep round(L (1 - ratio)) */
  ratio?: number;
  /** observation window w: its queries score, its entries are kept (SnapKV, PyramidKV, H2O; LAQ's stage 1) */
  window?: number;
  /** pooling kernel k */
  kernel?: number;
  pool?: PoolKind;
  /** reduction over a GQA group */
  gqa?: GqaReduce;
  /** attention sinks (StreamingLLM, Expected Attention, LAQ with a streaming stage 1) */
  sinks?: number;
  /** seed of the random press */
  seed?: number;
  /** the scorer AdaKV wraps */
  scorer?: string;
  /** AdaKV's safeguard share */
  alpha?: number;
  /** LAQ: pseudo tokens decoded ahead */
  lookahead?: number;
  /** LAQ: the cheap press of stage 1 */
  stage1?: Stage1Kind;
  /** LAQ++: prompt-window queries in stage 2 (and entries kept) */
  w2?: number;
  /** LAQ: reproduce the reference code's stage-2 mask */
  referenceMask?: boolean;
  /** Judge Q: the soft-token file ('' = the file delivered for the embedded model) */
  soft?: string;
  /** Judge Q: keep no prompt window (w = 0) */
  noWindow?: boolean;
}

export type Stage1Kind = 'snapkv' | 'streaming' | 'h2o';
export type PressOptionKey = Exclude<keyof PressOptions, 'budget' | 'ratio'>;

/** Every option with its default filled in. */
export type ResolvedOptions = Required<Omit<PressOptions, 'budget' | 'ratio'>>;

export const PRESS_DEFAULTS: ResolvedOptions = {
  window: 32, kernel: 7, pool: 'max', gqa: 'mean', sinks: 4, seed: 0, scorer: 'snapkv', alpha: 0.2,
  lookahead: 8, stage1: 'snapkv', w2: 8, referenceMask: false, soft: '', noWindow: false,
};

/** CLI name of each option. */
export const CLI_NAME: Record<keyof PressOptions, string> = {
  budget: 'budget', ratio: 'ratio', window: 'window', kernel: 'kernel', pool: 'pool', gqa: 'gqa', sinks: 'sinks', seed: 'seed',
  scorer: 'scorer', alpha: 'alpha', lookahead: 'lookahead', stage1: 'stage1', w2: 'w2', referenceMask: 'reference-mask',
  soft: 'soft', noWindow: 'no-window',
};

/**
 * The press options for a command's parser (generate, inspect, eval). No defaults here on purpose: an option
 * left out stays undefined, so a method can tell an option it does not take from one nobody gave.
 */
export const PRESS_OPTION_SPECS: OptionSpecs = {
  press: { type: 'string', help: 'eviction method: full, random, streaming, knorm, keydiff, h2o, tova, snapkv, pyramidkv, adakv, expected-attention, laq, laq++, judgeq, judgeq+laq, judgeq+window' },
  budget: { type: 'int', help: 'entries kept per KV head per layer, window included' },
  ratio: { type: 'number', help: 'fraction of the prompt removed, in [0, 1) (instead of --budget)' },
  window: { type: 'int', help: 'observation window w: last prompt tokens that score and are kept (default 32)' },
  kernel: { type: 'int', help: 'pooling kernel (default 7)' },
  pool: { type: 'string', help: 'pooling: max or avg (default max)' },
  gqa: { type: 'string', help: 'reduction over a GQA group: mean or max (default mean)' },
  sinks: { type: 'int', help: 'attention sinks kept (default 4)' },
  seed: { type: 'int', help: 'seed of the random press (default 0)' },
  scorer: { type: 'string', help: 'adakv: the scorer it wraps (default snapkv)' },
  alpha: { type: 'number', help: 'adakv: share of the budget each head keeps on its own (default 0.2)' },
  lookahead: { type: 'int', help: 'laq: pseudo tokens decoded ahead (default 8)' },
  stage1: { type: 'string', help: 'laq: stage-1 press snapkv, streaming or h2o (default snapkv)' },
  w2: { type: 'int', help: 'laq++: prompt-window queries in stage 2, kept too (default 8)' },
  'reference-mask': { type: 'boolean', help: "laq: the reference code's stage-2 mask, for comparison" },
  soft: { type: 'string', help: 'judgeq: trained soft-token file (default: models/kvevict-ref/judgeq.safetensors)' },
  'no-window': { type: 'boolean', help: 'judgeq, judgeq+laq: keep no prompt window (w = 0)' },
};

const KEY_OF_CLI: Record<string, keyof PressOptions> = Object.fromEntries(
  Object.entries(CLI_NAME).map(([k, v]) => [v, k as keyof PressOptions]),
);

/** The press name and the press options found in parsed CLI options. */
export function pressOptionsFromCli(parsed: ParsedOptions): { name: string | undefined; options: PressOptions } {
  const options: Record<string, unknown> = {};
  for (const [cli, key] of Object.entries(KEY_OF_CLI)) {
    const v = parsed[cli];
    if (v !== undefined) options[key] = v;
  }
  const name = parsed.press;
  return { name: typeof name === 'string' ? name : undefined, options: options as PressOptions };
}

function int(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new KvevictError(`--${name} must be an integer >= ${min}, got ${v}`);
}

/** Check each given option's own range (not how options relate to each other). */
export function checkOptionValues(o: PressOptions): void {
  if (o.budget !== undefined && (!Number.isInteger(o.budget) || o.budget < 1)) throw new KvevictError(`--budget must be an integer >= 1, got ${o.budget}`);
  if (o.ratio !== undefined && !(o.ratio >= 0 && o.ratio < 1)) throw new KvevictError(`--ratio must be in [0, 1), got ${o.ratio}`);
  if (o.window !== undefined) int('window', o.window, 1);
  if (o.kernel !== undefined) int('kernel', o.kernel, 1);
  if (o.pool !== undefined && o.pool !== 'max' && o.pool !== 'avg') throw new KvevictError(`--pool must be max or avg, got "${String(o.pool)}"`);
  if (o.gqa !== undefined && o.gqa !== 'mean' && o.gqa !== 'max') throw new KvevictError(`--gqa must be mean or max, got "${String(o.gqa)}"`);
  if (o.sinks !== undefined) int('sinks', o.sinks, 0);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new KvevictError(`--seed must be an integer, got ${o.seed}`);
  if (o.alpha !== undefined && !(o.alpha >= 0 && o.alpha <= 1)) throw new KvevictError(`--alpha must be in [0, 1], got ${o.alpha}`);
  if (o.lookahead !== undefined) int('lookahead', o.lookahead, 1);
  if (o.stage1 !== undefined && !['snapkv', 'streaming', 'h2o'].includes(o.stage1)) {
    throw new KvevictError(`--stage1 must be snapkv, streaming or h2o, got "${String(o.stage1)}"`);
  }
  if (o.w2 !== undefined) int('w2', o.w2, 1);
  if (o.soft !== undefined && (typeof o.soft !== 'string' || o.soft === '')) throw new KvevictError('--soft needs a file name');
  for (const [key, flag] of [['noWindow', 'no-window'], ['referenceMask', 'reference-mask']] as const) {
    const v = (o as Record<string, unknown>)[key];
    if (v !== undefined && typeof v !== 'boolean') throw new KvevictError(`--${flag} is true or false, got "${String(v)}"`);
  }
}
