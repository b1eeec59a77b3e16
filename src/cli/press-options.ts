/** The eviction method as every command spells it: --press NAME[:key=value...] with --budget B or --ratio R. */
import { KvevictError } from '../errors.js';
import { parsePress, pressFromSpec, withModelFiles, type PressSpec } from '../press/registry.js';
import type { Press } from '../press/types.js';
import type { OptionSpecs, ParsedOptions } from './args.js';

/** The press options of generate and inspect (eval takes lists of presses and budgets instead). */
export const PRESS_OPTION_SPECS: OptionSpecs = {
  press: { type: 'string', help: 'eviction method NAME[:key=value...], e.g. snapkv:window=64 (methods below)' },
  budget: { type: 'int', help: 'entries kept per KV head per layer, window included' },
  ratio: { type: 'number', help: 'fraction of the prompt removed, in [0, 1) (instead of --budget)' },
  'chunk-compress': {
    type: 'int',
    help: 'prefill in chunks of N tokens and cut every head back to the budget after each: no head holds more than budget + N entries',
  },
};

/** Compression while generating (generate only). */
export const DECODE_PRESS_OPTION_SPECS: OptionSpecs = {
  'decode-compress': {
    type: 'int',
    help: 'while generating, every N new tokens cut every head back to --decode-budget with the --press method (its window: the latest tokens)',
  },
  'decode-budget': { type: 'int', help: 'entries per KV head kept by --decode-compress' },
};

/** --press as parsed, its trained-file defaults taken from --model's folder where it has its own. */
function pressSpecFromCli(parsed: ParsedOptions): PressSpec {
  return withModelFiles(parsePress(String(parsed.press)), typeof parsed.model === 'string' ? parsed.model : undefined);
}

/** --decode-compress INTERVAL with --decode-budget B: the press (the --press method at budget B) and the interval, or undefined. */
export function decodeCompressFromCli(parsed: ParsedOptions): { press: Press; interval: number } | undefined {
  const interval = parsed['decode-compress'] as number | undefined;
  const budget = parsed['decode-budget'] as number | undefined;
  if (interval === undefined && budget === undefined) return undefined;
  if (interval === undefined || budget === undefined) throw new KvevictError('--decode-compress and --decode-budget go together');
  if (parsed.press === undefined) throw new KvevictError('--decode-compress needs --press (the method that cuts the cache)');
  if (!Number.isInteger(interval) || interval < 1) throw new KvevictError(`--decode-compress must be an integer >= 1, got ${interval}`);
  return { press: pressFromSpec(pressSpecFromCli(parsed), { budget }), interval };
}

/** --chunk-compress N (undefined when absent); it needs --press. */
export function chunkCompressFromCli(parsed: ParsedOptions): number | undefined {
  const n = parsed['chunk-compress'] as number | undefined;
  if (n === undefined) return undefined;
  if (parsed.press === undefined) throw new KvevictError('--chunk-compress needs --press');
  if (!Number.isInteger(n) || n < 1) throw new KvevictError(`--chunk-compress must be an integer >= 1, got ${n}`);
  return n;
}

/** The press described by --press and --budget / --ratio, or null when --press is absent (or only cuts while decoding). */
export function pressFromCli(parsed: ParsedOptions): Press | null {
  const budget = parsed.budget as number | undefined;
  const ratio = parsed.ratio as number | undefined;
  if (parsed['decode-compress'] !== undefined && budget === undefined && ratio === undefined) return null;
  if (parsed.press === undefined) {
    if (budget !== undefined || ratio !== undefined) throw new KvevictError(`--${budget !== undefined ? 'budget' : 'ratio'} needs --press`);
    return null;
  }
  return pressFromSpec(pressSpecFromCli(parsed), { budget, ratio });
}
