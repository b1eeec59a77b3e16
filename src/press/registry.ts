import { KvevictError } from '../errors.js';
import type { BudgetSpec } from './budget-spec.js';
import type { MethodDef } from './method.js';
import { adakvOwnOptions, adakvPress } from './methods/adakv.js';
import { expectedAttention } from './methods/expected-attention.js';
import { full } from './methods/full.js';
import { h2o } from './methods/h2o.js';
import { judgeq, judgeqLaq, judgeqWindow } from './methods/judgeq.js';
import { keydiff } from './methods/keydiff.js';
import { knorm } from './methods/knorm.js';
import { laq, laqPlus } from './methods/laq.js';
import { pyramidkv } from './methods/pyramidkv.js';
import { random } from './methods/random.js';
import { snapkv } from './methods/snapkv.js';
import { streaming } from './methods/streaming.js';
import { tova } from './methods/tova.js';
import {
  CLI_NAME, PRESS_DEFAULTS, checkOptionValues,
  type PressOptionKey, type PressOptions, type ResolvedOptions,
} from './options.js';
import type { Press } from './types.js';

const BASE: MethodDef[] = [full, random, streaming, knorm, keydiff, h2o, tova, snapkv, pyramidkv, expectedAttention, laq, laqPlus, judgeq, judgeqLaq, judgeqWindow];

/** Every method name `makePress` knows, in display order. */
export const PRESS_NAMES: readonly string[] = [
  'full', 'random', 'streaming', 'knorm', 'keydiff', 'h2o', 'tova', 'snapkv', 'pyramidkv', 'adakv', 'expected-attention', 'laq', 'laq++',
  'judgeq', 'judgeq+laq', 'judgeq+window',
];

/** The scorers AdaKV can wrap. */
export const ADAKV_SCORERS: readonly string[] = BASE.filter((m) => m.scorer).map((m) => m.name);

/** The method of a name (adakv, a wrapper, is not one). */
export function method(name: string): MethodDef | undefined {
  return BASE.find((m) => m.name === name);
}

/** The options a method takes besides --budget / --ratio (adakv: its own plus its scorer's). */
export function optionsOf(name: string, scorer = PRESS_DEFAULTS.scorer): readonly PressOptionKey[] {
  if (name === 'adakv') return [...adakvOwnOptions, ...(method(scorer)?.options ?? [])];
  const m = method(name);
  if (!m) throw new KvevictError(`unknown press "${name}" (presses: ${PRESS_NAMES.join(', ')})`);
  return m.options;
}

/** One-line description of a method. */
export function describePress(name: string): string {
  if (name === 'adakv') return 'AdaKV: wraps --scorer, sharing each layer budget among its heads';
  return method(name)?.summary ?? '';
}

/**
 * Build a press by name. Throws a one-line KvevictError for an unknown method, an option the method does not
 * take, a missing or doubled budget, a budget below 1, a ratio outside [0, 1), or a window (or w2, or sinks)
 * larger than the budget.
 */
export function makePress(name: string, options: PressOptions = {}): Press {
  const known = name === 'adakv' || method(name) !== undefined;
  if (!known) throw new KvevictError(`unknown press "${name}" (presses: ${PRESS_NAMES.join(', ')})`);
  checkOptionValues(options);
  const scorerName = options.scorer ?? PRESS_DEFAULTS.scorer;
  if (name === 'adakv' && !ADAKV_SCORERS.includes(scorerName)) {
    throw new KvevictError(`--scorer must be one of ${ADAKV_SCORERS.join(', ')} for adakv, got "${scorerName}"`);
  }
  const def = name === 'adakv' ? method(scorerName)! : method(name)!;
  const taken = new Set<string>(optionsOf(name, scorerName));
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || key === 'budget' || key === 'ratio') continue;
    if (!taken.has(key)) throw new KvevictError(`press ${name} does not take --${CLI_NAME[key as keyof PressOptions] ?? key}`);
  }
  const hasBudget = options.budget !== undefined;
  const hasRatio = options.ratio !== undefined;
  if (!def.needsBudget) {
    if (hasBudget || hasRatio) throw new KvevictError(`press ${name} does not take --${hasBudget ? 'budget' : 'ratio'} (it keeps everything)`);
    return def.make(resolve(options), { budget: 1 });
  }
  if (hasBudget && hasRatio) throw new KvevictError(`press ${name}: give --budget or --ratio, not both`);
  if (!hasBudget && !hasRatio) throw new KvevictError(`press ${name} needs --budget B or --ratio R`);
  const o = resolve(options);
  const budget: BudgetSpec = hasBudget ? { budget: options.budget! } : { ratio: options.ratio! };
  if (hasBudget) checkAgainstBudget(name, def, taken, o, options.budget!);
  return name === 'adakv' ? adakvPress(def, o, budget) : def.make(o, budget);
}

function resolve(options: PressOptions): ResolvedOptions {
  const o: ResolvedOptions = { ...PRESS_DEFAULTS };
  for (const [k, v] of Object.entries(options)) if (v !== undefined && k !== 'budget' && k !== 'ratio') (o as unknown as Record<string, unknown>)[k] = v;
  return o;
}

/** With a fixed budget, the windows and sinks a method keeps must fit in it. */
function checkAgainstBudget(name: string, def: MethodDef, taken: Set<string>, o: ResolvedOptions, budget: number): void {
  const usesWindow = taken.has('window') && (def.name !== 'laq' && def.name !== 'laq++' ? true : o.stage1 !== 'streaming')
    && !(o.noWindow && def.name === 'judgeq');
  if (usesWindow && o.window > budget) throw new KvevictError(`press ${name}: --window ${o.window} is larger than --budget ${budget}`);
  const usesSinks = def.name === 'streaming' || def.name === 'expected-attention' || ((def.name === 'laq' || def.name === 'laq++' || def.name === 'judgeq+laq') && o.stage1 === 'streaming');
  if (usesSinks && o.sinks > budget) throw new KvevictError(`press ${name}: --sinks ${o.sinks} is larger than --budget ${budget}`);
  if (def.name === 'laq++' && o.w2 > budget) throw new KvevictError(`press ${name}: --w2 ${o.w2} is larger than --budget ${budget}`);
}


