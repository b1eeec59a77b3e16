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
