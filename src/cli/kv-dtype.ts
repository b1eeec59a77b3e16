/** --kv-dtype, as generate, inspect, compress and eval spell it. */
import { DEFAULT_KV_DTYPE, KV_DTYPES, checkKvDtype, type KvDtype } from '../cache/kv-cache.js';
import type { OptionSpecs, ParsedOptions } from './args.js';

export const KV_DTYPE_OPTION_SPECS: OptionSpecs = {
  'kv-dtype': {
    type: 'string',
    help: `how the KV cache stores keys and values: ${KV_DTYPES.join(' or ')} (default ${DEFAULT_KV_DTYPE}: half the memory, as llama.cpp)`,
  },
};

/** The cache dtype asked for, or the default; a bad value is refused naming the command and the option. */
export function kvDtypeFromCli(parsed: ParsedOptions, command: string): KvDtype {
  const v = parsed['kv-dtype'];
  return v === undefined ? DEFAULT_KV_DTYPE : checkKvDtype(v, `${command}: --kv-dtype`);
}
