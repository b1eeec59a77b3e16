import { KvevictError } from '../errors.js';
import { decode } from '../generate/decode.js';
import { prefillAndCompress } from '../generate/pipeline.js';
import { makeSampler, validateSampling, type SamplingOptions, type TopEntry } from '../generate/sampling.js';
import { LlamaModel } from '../model/llama.js';
import { loadModelDir } from '../model/load.js';
import { defaultModelDir } from '../paths.js';
import { PRESS_OPTION_SPECS, pressFromCli } from '../press/index.js';
import { formatHelp, parseArgs, requireString, type OptionSpecs, type ParsedOptions } from './args.js';

export const summary = 'generate text from a prompt or a chat message';

/** Options of text generation, shared with commands that generate (eval, demo). */
export const GENERATION_OPTION_SPECS: OptionSpecs = {
  'max-new-tokens': { type: 'int', help: 'most tokens to generate', default: 64 },
  temperature: { type: 'number', help: 'sampling temperature; 0 is greedy', default: 0 },
  'top-p': { type: 'number', help: 'nucleus sampling: keep the most likely tokens up to this probability mass', default: 1 },
  'top-k': { type: 'int', help: 'keep only the k most likely tokens (0: all)', default: 0 },
  seed: { type: 'int', help: 'seed of the sampler', default: 0 },
};

const specs: OptionSpecs = {
  model: { type: 'string', help: 'model folder (config.json, *.safetensors, tokenizer.json)', default: defaultModelDir },
  prompt: { type: 'string', help: 'text, tokenized as is (no special tokens added)' },
  chat: { type: 'string', help: "one user message, through the model's chat template with the generation prompt" },
  ...GENERATION_OPTION_SPECS,
  // KV-cache eviction after the prefill; --seed is the sampler's and also seeds the random press
  ...Object.fromEntries(Object.entries(PRESS_OPTION_SPECS).filter(([name]) => name !== 'seed')),
  json: { type: 'boolean', help: 'print one JSON object: prompt and generated ids, text, top-5 log-probabilities per step, timings' },
  help: { type: 'boolean', help: 'show this help' },
};

const USAGE = 'kvevict generate --model DIR (--prompt TEXT | --chat TEXT) [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--press NAME (--budget B | --ratio R) [method options]] [--json]';

/** Sampling options from parsed generation options; bad values throw naming the option. */
export function samplingFromOptions(o: ParsedOptions): SamplingOptions & { maxNewTokens: number } {
  const s: SamplingOptions = { temperature: o.temperature as number, topP: o['top-p'] as number, topK: o['top-k'] as number, seed: o.seed as number };
  validateSampling(s);
  const maxNewTokens = o['max-new-tokens'] as number;
  if (maxNewTokens < 0) throw new KvevictError(`generate: --max-new-tokens must be >= 0, got ${maxNewTokens}`);
  return { ...s, maxNewTokens };
}

export interface GenerateJson {
  promptTokens: number[];
  tokens: number[];
  text: string;
  steps: { token: number; top: TopEntry[] }[];
  timings: { loadMs: number; prefillMs: number; decodeMs: number; prefillTokPerS: number; decodeTokPerS: number };
  /** with --press: the method, the time it took to choose, and the cache before and after eviction */
  eviction?: { press: string; selectMs: number; fullCacheBytes: number; cacheBytes: number };
}

export async function run(argv: string[]): Promise<number> {
  const { options, positionals } = parseArgs(argv, specs, 'generate');
  if (options.help) {
    process.stdout.write(formatHelp(USAGE, specs) + '\n');
    return 0;
  }
  if (positionals.length) throw new KvevictError(`generate: unexpected argument "${positionals[0]}" (the text goes after --prompt or --chat)`);
  const prompt = options.prompt as string | undefined;
  const chat = options.chat as string | undefined;
  if ((prompt === undefined) === (chat === undefined)) throw new KvevictError('generate: give exactly one of --prompt or --chat');
  const sampling = samplingFromOptions(options);
  const press = pressFromCli(options, ['seed']);
  const dir = requireString(options, 'model', 'generate');

  const t0 = performance.now();
  const loaded = loadModelDir(dir);
  const model = new LlamaModel(loaded.config, loaded.weights);
  const tok = loaded.tokenizer;
  const loadMs = performance.now() - t0;

  const promptTokens = prompt !== undefined ? tok.encode(prompt) : tok.encodeChat([{ role: 'user', content: chat! }], { addGenerationPrompt: true });
  if (promptTokens.length === 0) throw new KvevictError(`generate: ${prompt !== undefined ? '--prompt' : '--chat'} is empty`);
  if (promptTokens.length >= loaded.config.maxPositions) {
    throw new KvevictError(`generate: the prompt has ${promptTokens.length} tokens; the model's max_position_embeddings is ${loaded.config.maxPositions}`);
  }

  // prefill (and, with --press, eviction: the cache keeps its original positions)
  const p = await prefillAndCompress(model, promptTokens, press, { eosTokenIds: tok.eosTokenIds });
  const t2 = performance.now();
  const d = decode(model, p.cache, {
    firstLogits: p.lastLogits, nextPosition: p.nextPosition, maxNewTokens: sampling.maxNewTokens,
    stopTokens: tok.eosTokenIds, sampler: makeSampler(sampling),
  });
  const t3 = performance.now();

  // the stop token is not text; nor are ids past the tokenizer (a model's vocabulary is often padded)
  const shown = (d.finish === 'stop' ? d.tokens.slice(0, -1) : d.tokens).filter((id) => id < tok.vocabSize);
  const text = tok.decode(shown, { skipSpecialTokens: true });
  const prefillMs = p.prefillMs;
  const eviction = press ? { press: press.name, selectMs: p.selectMs, fullCacheBytes: p.fullCacheBytes, cacheBytes: p.cacheBytes } : undefined;
  const decodeMs = t3 - t2;
  const forwards = Math.max(0, d.tokens.length - 1);
  const timings = {
    loadMs, prefillMs, decodeMs,
    prefillTokPerS: (promptTokens.length / prefillMs) * 1000,
    decodeTokPerS: forwards > 0 ? (forwards / decodeMs) * 1000 : 0,
  };
  if (options.json) {
    const out: GenerateJson = { promptTokens, tokens: d.tokens, text, steps: d.steps, timings, ...(eviction ? { eviction } : {}) };
    process.stdout.write(JSON.stringify(out) + '\n');
  } else {
    process.stdout.write(text + '\n');
    process.stderr.write(
      `load ${loadMs.toFixed(0)} ms; prompt ${promptTokens.length} tokens, prefill ${prefillMs.toFixed(0)} ms (${timings.prefillTokPerS.toFixed(1)} tok/s); ` +
      (eviction ? `${eviction.press}: selection ${eviction.selectMs.toFixed(0)} ms, cache ${(eviction.fullCacheBytes / 2 ** 20).toFixed(1)} -> ${(eviction.cacheBytes / 2 ** 20).toFixed(1)} MiB; ` : '') +
      `${d.tokens.length} tokens generated, decode ${decodeMs.toFixed(0)} ms (${timings.decodeTokPerS.toFixed(1)} tok/s)\n`,
    );
  }
  return 0;
}
