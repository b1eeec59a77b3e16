import { KvevictError } from '../errors.js';
import { loadCompressedContext } from '../generate/context-file.js';
import { PIPELINE_MODES, answer, runWithMode, type PipelineMode, type RunResult } from '../generate/pipeline.js';
import { makeSampler, validateSampling, type SamplingOptions, type TopEntry } from '../generate/sampling.js';
import { LlamaModel, WEIGHT_FORMATS, type WeightFormat } from '../model/llama.js';
import { loadModelDir } from '../model/load.js';
import { assemblePrompt, promptText, withBos } from '../eval/prompt.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { defaultModelDir } from '../paths.js';
import { pressHelp } from '../press/registry.js';
import {
  DECODE_PRESS_OPTION_SPECS,
  PRESS_OPTION_SPECS,
  chunkCompressFromCli,
  decodeCompressFromCli,
  pressFromCli,
} from './press-options.js';
import { prefillProgress } from './prefill-progress.js';
import { KV_DTYPE_OPTION_SPECS, kvDtypeFromCli } from './kv-dtype.js';
import { tokenCacheBytes, type KvDtype } from '../cache/kv-cache.js';
import { requireString, type OptionSpecs, type ParsedOptions, commandOptions } from './args.js';

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
  prompt: {
    type: 'string',
    help: "text, tokenized as is, after BOS when the model's tokenizer asks for one (add_bos_token; SentencePiece GGUF files by default)",
  },
  chat: { type: 'string', help: "one user message, through the model's chat template with the generation prompt" },
  context: {
    type: 'string',
    help: 'a compressed context (.kvc, from kvevict compress): --question is answered on it without prefilling the context again (query-agnostic)',
  },
  question: {
    type: 'string',
    help: "a question after the context: a blank line, then the question (inside the user turn with --chat), as eval's plain JSONL prompts",
  },
  mode: {
    type: 'string',
    help: 'query-aware: the whole prompt, question included, is compressed; query-agnostic: only --prompt/--chat is compressed, --question is fed after it at the next positions',
    default: 'query-aware',
  },
  ...GENERATION_OPTION_SPECS,
  // KV-cache eviction after the prefill
  ...PRESS_OPTION_SPECS,
  ...DECODE_PRESS_OPTION_SPECS,
  ...KV_DTYPE_OPTION_SPECS,
  weights: {
    type: 'string',
    help: 'how the linear layers hold their weights in memory: auto (as the file stores them: f32, bf16, or GGUF blocks), f32, f16 or bf16 (half the bytes each decode step reads; outputs change by the rounding)',
    default: 'auto',
  },
  json: { type: 'boolean', help: 'print one JSON object: prompt and generated ids, text, top-5 log-probabilities per step, timings' },
  help: { type: 'boolean', help: 'show this help' },
};

const USAGE =
  'kvevict generate --model DIR (--prompt TEXT | --chat TEXT | --context FILE.kvc) [--question TEXT [--mode query-aware|query-agnostic]] [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--press NAME[:key=value...] (--budget B | --ratio R)] [--kv-dtype f16|f32] [--weights f32|f16] [--json]';

/** Sampling options from parsed generation options; bad values throw naming the option. */
export function samplingFromOptions(o: ParsedOptions): SamplingOptions & { maxNewTokens: number } {
  const s: SamplingOptions = {
    temperature: o.temperature as number,
    topP: o['top-p'] as number,
    topK: o['top-k'] as number,
    seed: o.seed as number,
  };
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
  /** with --question: which part was compressed */
  mode?: PipelineMode;
  /** with --question: the ids fed after the context (the end of promptTokens); query-agnostic mode compresses only what comes before */
  questionTokens?: number[];
  /**
   * Cache bytes by the cache's own accounting: the most held at any moment (for a one-shot compression, the
   * full prefill's), at the end, and of the full prompt cache (context and question, as without eviction).
   */
  memory: { peakCacheBytes: number; finalCacheBytes: number; fullCacheBytes: number; kvDtype: KvDtype };
  /** with --context: the compressed context answered on (its prefill was not run again) */
  context?: { file: string; reused: true };
}

/**
 * The prompt of --prompt/--chat and --question split as eval splits its cases (src/eval/prompt.ts): the
 * context (with the chat header) and the rest of the user turn (a blank line, the question, the chat
 * template's end and the assistant header). A prompt that does not fit the model is an error, not cut.
 */
function splitPrompt(
  tok: Tokenizer,
  maxPositions: number,
  text: string,
  chat: boolean,
  question: string,
  dir: string,
): { context: number[]; question: number[] } {
  if (chat && !tok.chatTemplate)
    throw new KvevictError(`generate: --chat: ${dir} has no chat template (tokenizer_config.json "chat_template")`);
  const p = assemblePrompt(tok, { head: text, tail: `\n\n${question}`, chat, reserve: 0, id: 'generate' }, maxPositions - 1);
  const total = p.contextTokens.length + p.questionTokens.length + p.truncatedTokens;
  if (p.truncatedTokens > 0 || total >= maxPositions) {
    throw new KvevictError(
      `generate: the prompt and question have ${total} tokens; the model's max_position_embeddings is ${maxPositions}`,
    );
  }
  return { context: Array.from(p.contextTokens), question: Array.from(p.questionTokens) };
}

export async function run(argv: string[]): Promise<number> {
  const options = commandOptions(argv, specs, 'generate', USAGE, { more: pressHelp(), hint: ' (the text goes after --prompt or --chat)' });
  if (!options) return 0;
  const prompt = options.prompt as string | undefined;
  const chat = options.chat as string | undefined;
  const contextFile = options.context as string | undefined;
  if ([prompt, chat, contextFile].filter((x) => x !== undefined).length !== 1)
    throw new KvevictError('generate: give exactly one of --prompt, --chat or --context');
  const question = options.question as string | undefined;
  if (contextFile !== undefined) {
    if (question === undefined) throw new KvevictError('generate: --context needs --question (what is asked of the compressed context)');
    for (const k of ['press', 'budget', 'ratio', 'chunk-compress', 'decode-compress', 'decode-budget'])
      if (options[k] !== undefined)
        throw new KvevictError(`generate: --${k} does not go with --context (the context was compressed by kvevict compress)`);
  }
  const mode = options.mode as string;
  if (!(PIPELINE_MODES as readonly string[]).includes(mode))
    throw new KvevictError(`generate: --mode must be ${PIPELINE_MODES.join(' or ')}, got "${mode}"`);
  if (question === undefined && mode === 'query-agnostic')
    throw new KvevictError('generate: --mode query-agnostic needs --question (the part fed after the compressed context)');
  if (question !== undefined && question.trim() === '') throw new KvevictError('generate: --question is empty');
  const sampling = samplingFromOptions(options);
  const press = pressFromCli(options);
  const dir = requireString(options, 'model', 'generate');
  const weights = options.weights as string;
  if (!(WEIGHT_FORMATS as readonly string[]).includes(weights))
    throw new KvevictError(`generate: --weights must be one of ${WEIGHT_FORMATS.join(', ')}, got "${weights}"`);

  let kvDtype: KvDtype = kvDtypeFromCli(options, 'generate');

  const t0 = performance.now();
  const loaded = loadModelDir(dir);
  const model = new LlamaModel(loaded.config, loaded.weights, undefined, { weights: weights as WeightFormat });
  const tok = loaded.tokenizer;
  const loadMs = performance.now() - t0;

  let promptTokens: number[];
  let questionTokens: number[] | undefined;
  let contextTokens: number[];
  let reused: RunResult | undefined;
  let reusedPress: string | null = null;
  if (contextFile !== undefined) {
    // the saved context, then the question as generate --prompt/--chat ... --question would have split it
    const saved = loadCompressedContext(contextFile, model);
    if (options['kv-dtype'] !== undefined && saved.context.cache.dtype !== kvDtype)
      throw new KvevictError(
        `generate: --kv-dtype ${kvDtype}, but ${contextFile} holds an ${saved.context.cache.dtype} cache (the file decides; leave --kv-dtype out)`,
      );
    kvDtype = saved.context.cache.dtype;
    const q = assemblePrompt(tok, { head: '', tail: `\n\n${question}`, chat: saved.origin.chat, reserve: 0, id: 'generate' }, Infinity);
    contextTokens = Array.from(saved.origin.tokens);
    questionTokens = Array.from(q.questionTokens);
    promptTokens = [...contextTokens, ...questionTokens];
    if (saved.context.nextPosition + questionTokens.length >= loaded.config.maxPositions)
      throw new KvevictError(`generate: the context and question pass the model's max_position_embeddings ${loaded.config.maxPositions}`);
    const a = answer(model, saved.context, questionTokens, {
      maxNewTokens: sampling.maxNewTokens,
      stopTokens: tok.eosTokenIds,
      sampler: makeSampler(sampling),
    });
    reused = {
      ...a,
      plan: saved.context.plan,
      promptLength: promptTokens.length,
      fullCacheBytes: saved.context.fullCacheBytes,
      cacheBytes: saved.context.cacheBytes,
      peakCacheBytes: Math.max(saved.context.cache.peakBytes, a.peakCacheBytes),
      finalCacheBytes: a.cacheBytes,
      prefillMs: a.questionMs,
      selectMs: 0,
    };
    reusedPress = saved.origin.press;
  } else if (question === undefined) {
    promptTokens =
      prompt !== undefined
        ? tok.encode(prompt, { addSpecialTokens: true })
        : withBos(tok, tok.encodeChat([{ role: 'user', content: chat! }], { addGenerationPrompt: true }));
    if (promptTokens.length === 0 || (prompt !== undefined && prompt === ''))
      throw new KvevictError(`generate: ${prompt !== undefined ? '--prompt' : '--chat'} is empty`);
    if (promptTokens.length >= loaded.config.maxPositions) {
      throw new KvevictError(
        `generate: the prompt has ${promptTokens.length} tokens; the model's max_position_embeddings is ${loaded.config.maxPositions}`,
      );
    }
    contextTokens = promptTokens;
  } else {
    if ((prompt ?? chat!) === '' && mode === 'query-agnostic')
      throw new KvevictError(`generate: ${prompt !== undefined ? '--prompt' : '--chat'} is empty (query-agnostic mode compresses it)`);
    const split = splitPrompt(tok, loaded.config.maxPositions, prompt ?? chat!, prompt === undefined, question, dir);
    contextTokens = split.context;
    questionTokens = split.question;
    promptTokens = [...contextTokens, ...questionTokens];
  }

  // prefill (and, with --press, eviction: the cache keeps its original positions), then decode
  const d: RunResult =
    reused ??
    (await runWithMode(model, mode as PipelineMode, contextTokens, questionTokens ?? [], press, {
      maxNewTokens: sampling.maxNewTokens,
      stopTokens: tok.eosTokenIds,
      sampler: makeSampler(sampling),
      text: promptText(tok, chat !== undefined),
      chunkCompress: chunkCompressFromCli(options),
      decodeCompress: decodeCompressFromCli(options),
      progress: prefillProgress(),
      kvDtype,
    }));

  // the stop token is not text; nor are ids past the tokenizer (a model's vocabulary is often padded)
  const shown = (d.finish === 'stop' ? d.tokens.slice(0, -1) : d.tokens).filter((id) => id < tok.vocabSize);
  const text = tok.decode(shown, { skipSpecialTokens: true });
  const prefillMs = d.prefillMs;
  const pressName = press?.name ?? reusedPress;
  const eviction = pressName
    ? { press: pressName, selectMs: d.selectMs, fullCacheBytes: d.fullCacheBytes, cacheBytes: d.cacheBytes }
    : undefined;
  const effectiveMode: PipelineMode = contextFile !== undefined ? 'query-agnostic' : (mode as PipelineMode);
  const decodeMs = d.decodeMs;
  const forwards = Math.max(0, d.tokens.length - 1);
  const timings = {
    loadMs,
    prefillMs,
    decodeMs,
    // with --context only the question is prefilled
    prefillTokPerS: ((contextFile !== undefined ? questionTokens!.length : promptTokens.length) / prefillMs) * 1000,
    decodeTokPerS: forwards > 0 ? (forwards / decodeMs) * 1000 : 0,
  };
  if (options.json) {
    const out: GenerateJson = {
      promptTokens,
      tokens: d.tokens,
      text,
      steps: d.steps,
      timings,
      memory: {
        peakCacheBytes: d.peakCacheBytes,
        finalCacheBytes: d.finalCacheBytes,
        fullCacheBytes: promptTokens.length * tokenCacheBytes(loaded.config, kvDtype),
        kvDtype,
      },
      ...(eviction ? { eviction } : {}),
      ...(questionTokens ? { mode: effectiveMode, questionTokens } : {}),
      ...(contextFile !== undefined ? { context: { file: contextFile, reused: true as const } } : {}),
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  } else {
    process.stdout.write(text + '\n');
    process.stderr.write(
      `load ${loadMs.toFixed(0)} ms; prompt ${promptTokens.length} tokens` +
        (questionTokens ? ` (${effectiveMode}: context ${contextTokens.length}, question ${questionTokens.length})` : '') +
        `, prefill ${prefillMs.toFixed(0)} ms (${timings.prefillTokPerS.toFixed(1)} tok/s); ` +
        (eviction
          ? `${eviction.press}: selection ${eviction.selectMs.toFixed(0)} ms, cache ${(eviction.fullCacheBytes / 2 ** 20).toFixed(1)} -> ${(eviction.cacheBytes / 2 ** 20).toFixed(1)} MiB; `
          : '') +
        `${d.tokens.length} tokens generated, decode ${decodeMs.toFixed(0)} ms (${timings.decodeTokPerS.toFixed(1)} tok/s)\n`,
    );
  }
  return 0;
}
