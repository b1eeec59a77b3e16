/**
 * The eviction methods' options as the command line spells them: the specs every command's parser takes
 * (generate, inspect, eval) and the press they describe.
 */
import { KvevictError } from '../errors.js';
import { CLI_NAME, PRESS_DEFAULTS, type PressOptions } from '../press/options.js';
import { makePress, method, optionsOf } from '../press/registry.js';
import type { Press } from '../press/types.js';
import type { OptionSpecs, ParsedOptions } from './args.js';

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

/**
 * The press described by parsed CLI options (--press and the method options), or null when --press is absent.
 * `commandOwned` names options the command also uses itself (generate's sampling --seed): they reach the press
 * only when the method takes them.
 */
export function pressFromCli(parsed: ParsedOptions, commandOwned: readonly string[] = []): Press | null {
  const { name, options } = pressOptionsFromCli(parsed);
  if (name === undefined) {
    const given = Object.entries(options).filter(([k, v]) => v !== undefined && !commandOwned.includes(CLI_NAME[k as keyof PressOptions]));
    if (given.length > 0) throw new KvevictError(`--${CLI_NAME[given[0][0] as keyof PressOptions]} needs --press`);
    return null;
  }
  if (name === 'adakv' || method(name)) {
    const taken = new Set<string>(optionsOf(name, options.scorer ?? PRESS_DEFAULTS.scorer));
    for (const cli of commandOwned) {
      const key = Object.entries(CLI_NAME).find(([, v]) => v === cli)?.[0];
      if (key && !taken.has(key)) delete (options as Record<string, unknown>)[key];
    }
  }
  return makePress(name, options);
}
