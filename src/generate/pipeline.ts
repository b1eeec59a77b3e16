/**
 * Generation with KV-cache eviction.
 *
 * - Query-aware (the papers' LongBench setting): the whole prompt, question included, is prefilled and
 *   compressed, then decoding starts from the prefill's last logits: `runQueryAware`.
 * - Query-agnostic (kvpress's default): only the context is prefilled and compressed (`prefillAndCompress`);
 *   each question is then fed at the original next positions on its own copy of the compressed cache and
 *   answered (`answer`), so several questions share one compressed context: `runQueryAgnostic`.
 */
import { DEFAULT_KV_DTYPE, checkKvDtype, tokenCacheBytes, type KvCache, type KvDtype } from '../cache/kv-cache.js';
import { KvevictError } from '../errors.js';
import { kernels } from '../kernels/index.js';
import type { LlamaModel } from '../model/llama.js';
import type { Observer } from '../model/types.js';
import { PrefillRecorder, mergeCaptures } from '../press/capture.js';
import { keepAllPlan, selectCache } from '../press/select-cache.js';
import type { Captured, CaptureRequest, KeepPlan, Press, PrefillRun, PromptText } from '../press/types.js';
import { carryWindow, checkChunkable } from './chunking.js';
import { decode, type DecodeResult } from './decode.js';
import { decodeCompressing, type DecodeCompression } from './decode-compress.js';
import type { Sampler } from './sampling.js';

export interface PrefillOptions {
  /** what the presses that will compress this prefill need recorded (merged) */
  record?: readonly CaptureRequest[];
  /** sees every layer of the prefill, after the recorder */
  observer?: Observer;
  /** prefill chunk size in rows (engine default 512) */
  chunk?: number;
  /** where a press that decodes ahead (LAQ) stops; default: the model's end-of-sequence ids */
  eosTokenIds?: readonly number[];
  /** the prompt's tokenizer, for presses that write text (KVzip) */
  text?: PromptText;
  /** called as the prefill goes, with the prompt tokens done so far and the total (long prompts) */
  progress?: (done: number, total: number) => void;
  /** how the cache stores keys and values: 'f16' (default, as llama.cpp: half the bytes) or 'f32' */
  kvDtype?: KvDtype;
}

/** Rows a prefill feeds per forward call when it reports progress. */
const PROGRESS_BLOCK = 4096;

/** A prompt prefilled with the full cache: what every press compresses from, and where decoding goes on. */
export interface Prefilled extends PrefillRun {
  model: LlamaModel;
  /** position of the first token after the prompt */
  nextPosition: number;
  prefillMs: number;
}

/** Prefill `tokens` into a new full cache at positions 0.., recording what `record` asks for. */
export function prefill(model: LlamaModel, tokens: ArrayLike<number>, opts: PrefillOptions = {}): Prefilled {
  // in blocks only when progress is reported (the blocks are what the engine's chunks would be)
  const steps = prefillSteps(model, tokens, opts, opts.progress ? PROGRESS_BLOCK : Infinity);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * prefill() a block of rows at a time: each step feeds up to `block` more prompt rows and yields the rows done
 * so far; the generator returns the Prefilled. A server interleaves other work (decode steps) between blocks.
 */
export function* prefillSteps(
  model: LlamaModel,
  tokens: ArrayLike<number>,
  opts: PrefillOptions = {},
  block = PROGRESS_BLOCK,
): Generator<number, Prefilled> {
  if (tokens.length === 0) throw new KvevictError('the prompt is empty (no tokens to prefill)');
  const ids = Int32Array.from(tokens);
  const L = ids.length;
  const cache = model.newCache(checkKvDtype(opts.kvDtype ?? DEFAULT_KV_DTYPE));
  const positions = new Int32Array(L);
  for (let i = 0; i < L; i++) positions[i] = i;
  const recorder = new PrefillRecorder(kernels(), model.config, cache, 0, L, mergeCaptures(...(opts.record ?? [])));
  const extra = opts.observer;
  const observer: Observer | undefined = recorder.idle
    ? extra
    : extra
      ? (v) => {
          recorder.observer(v);
          extra(v);
        }
      : recorder.observer;
  let lastLogits: Float32Array = new Float32Array(0);
  let prefillMs = 0;
  for (let s = 0; s < L; s += block) {
    const e = Math.min(L, s + block);
    const t0 = performance.now();
    lastLogits = model.forward({ tokens: ids.subarray(s, e), positions: positions.subarray(s, e), cache, chunk: opts.chunk, observer });
    prefillMs += performance.now() - t0;
    opts.progress?.(e, L);
    if (e < L) yield e;
  }
  return {
    model,
    cache,
    tokens: ids,
    promptLength: L,
    startPosition: 0,
    lastLogits,
    captured: recorder.result(),
    eosTokenIds: opts.eosTokenIds ?? model.config.eosTokenIds,
    text: opts.text,
    nextPosition: L,
    prefillMs,
  };
}

/**
 * Keep the entries `press` chooses from a prefill (`press` null keeps everything). The prefill's own cache
 * shrinks in place (memory is really freed), unless `copy`: then it stays whole for other presses and the
 * kept entries are copied.
 */
export async function compress(run: Prefilled, press: Press | null, opts: { copy?: boolean } = {}): Promise<CompressedContext> {
  const fullCacheBytes = run.cache.bytes;
  const t0 = performance.now();
  const plan = press ? await press.compress(run) : keepAllPlan(run.cache);
  let cache = run.cache;
  if (opts.copy) cache = selectCache(run.cache, plan);
  else if (press) cache.retainAll(plan);
  const selectMs = performance.now() - t0;
  return {
    cache,
    promptLength: run.promptLength,
    nextPosition: run.nextPosition,
    lastLogits: run.lastLogits,
    plan,
    fullCacheBytes,
    cacheBytes: cache.bytes,
    prefillMs: run.prefillMs,
    selectMs,
  };
}

/** Options of prefillAndCompress. */
export type CompressOptions = Omit<PrefillOptions, 'record'> & {
  /**
   * Prefill in chunks of this many tokens and cut every head back to the budget after each one, so no head
   * ever holds more than budget + chunkCompress entries (the last cut sees the whole prompt; one chunk is the
   * one-shot compression). 0 or absent: one prefill, then one compression.
   */
  chunkCompress?: number;
};

/** A prefilled, compressed context: its cache, where to continue, and what compression cost. */
export interface CompressedContext {
  /** the compressed cache (entries keep their original positions) */
  cache: KvCache;
  /** number of context tokens */
  promptLength: number;
  /** position of the next token: the context length, whatever was evicted */
  nextPosition: number;
  /** logits of the last context position (the first new token is chosen from them) */
  lastLogits: Float32Array;
  /** [layer][kvHead] sorted positions kept */
  plan: KeepPlan;
  /** live cache bytes before and after eviction */
  fullCacheBytes: number;
  cacheBytes: number;
  prefillMs: number;
  /** time the press took to choose, and to apply its plan */
  selectMs: number;
}

/** prefill, then compress in place: the compressed context of a prompt (chunk by chunk with `chunkCompress`). */
export async function prefillAndCompress(
  model: LlamaModel,
  tokens: ArrayLike<number>,
  press: Press | null,
  opts: CompressOptions = {},
): Promise<CompressedContext> {
  const L = tokens.length;
  const chunk = opts.chunkCompress ?? 0;
  if (press && chunk > 0 && chunk < L) return chunkedCompress(model, Int32Array.from(tokens), press, chunk, opts);
  return compress(prefill(model, tokens, { ...opts, record: press ? [press.capture(L)] : [] }), press);
}

/**
 * Chunked prefill compression: each chunk of `chunk` tokens is prefilled onto the cache as it stands (the
 * chunk's rows attend to the entries kept so far and to the chunk), recorded as the press asks, and then every
 * head is cut back to the budget by the press, which sees the prompt so far as its prompt. The cache never
 * holds more than budget + chunk entries per head; the full cache never exists.
 */
async function chunkedCompress(
  model: LlamaModel,
  ids: Int32Array,
  press: Press,
  chunk: number,
  opts: CompressOptions,
): Promise<CompressedContext> {
  checkChunkable(press, chunk);
  const L = ids.length;
  const cfg = model.config;
  const cache = model.newCache(checkKvDtype(opts.kvDtype ?? DEFAULT_KV_DTYPE));
  let lastLogits: Float32Array = new Float32Array(0);
  let plan: KeepPlan = [];
  let prefillMs = 0,
    selectMs = 0;
  let previous: Captured | null = null;
  const request = press.capture(L);
  for (let s = 0; s < L; s += chunk) {
    const e = Math.min(L, s + chunk);
    const positions = new Int32Array(e - s);
    for (let i = 0; i < positions.length; i++) positions[i] = s + i;
    // what the press records when it scores (the whole prompt's request, so every chunk records its window)
    const recorder = new PrefillRecorder(kernels(), cfg, cache, 0, e, request, previous);
    const t0 = performance.now();
    lastLogits = model.forward({
      tokens: ids.subarray(s, e),
      positions,
      cache,
      chunk: opts.chunk,
      observer: recorder.idle ? undefined : recorder.observer,
    });
    const t1 = performance.now();
    const run: PrefillRun = {
      model,
      cache,
      tokens: ids.subarray(0, e),
      promptLength: e,
      startPosition: 0,
      lastLogits,
      captured: recorder.result(),
      eosTokenIds: opts.eosTokenIds ?? cfg.eosTokenIds,
      text: opts.text,
    };
    carryWindow(run.captured, previous, s, cfg.numHeads * cfg.headDim);
    previous = run.captured;
    plan = await press.compress(run);
    cache.retainAll(plan);
    prefillMs += t1 - t0;
    selectMs += performance.now() - t1;
    opts.progress?.(e, L);
  }
  return {
    cache,
    promptLength: L,
    nextPosition: L,
    lastLogits,
    plan,
    fullCacheBytes: L * tokenCacheBytes(cfg, cache.dtype),
    cacheBytes: cache.bytes,
    prefillMs,
    selectMs,
  };
}

export interface DecodeOpts {
  maxNewTokens: number;
  /** default: greedy */
  sampler?: Sampler;
  /** default: the model's end-of-sequence ids */
  stopTokens?: readonly number[];
  /** sees every layer of every decode step (e.g. to measure attention recall) */
  observer?: Observer;
  onToken?: (token: number, step: number) => void;
  chunk?: number;
  /** the prompt's tokenizer, for presses that write text (KVzip) */
  text?: PromptText;
  /** compress the prompt chunk by chunk (see CompressOptions.chunkCompress) */
  chunkCompress?: number;
  /** cut the cache back every `interval` generated tokens (runQueryAware and runWithMode) */
  decodeCompress?: DecodeCompression;
  /** the prompt's prefill progress (PrefillOptions.progress) */
  progress?: (done: number, total: number) => void;
  /** the cache's storage (PrefillOptions.kvDtype; default f16) */
  kvDtype?: KvDtype;
}

export interface AnswerResult extends DecodeResult {
  /** live cache bytes at the end (compressed context + question + answer) */
  cacheBytes: number;
  /** the most the answer's cache held (its copy of the context included) */
  peakCacheBytes: number;
  /** time to feed the question */
  questionMs: number;
  decodeMs: number;
}

/**
 * Answer one question on a compressed context (query-agnostic mode): the question is fed at positions
 * nextPosition, nextPosition + 1, ... on a copy of the compressed cache, then decoded. The context is
 * unchanged, so it serves any number of questions. An empty question decodes from the context's last logits.
 */
export function answer(model: LlamaModel, context: CompressedContext, questionTokens: ArrayLike<number>, opts: DecodeOpts): AnswerResult {
  const q = feedQuestion(model, context, questionTokens, opts.chunk);
  const t1 = performance.now();
  const d = decodeFrom(model, q.cache, q.logits, q.nextPosition, opts);
  const t2 = performance.now();
  return { ...d, cacheBytes: q.cache.bytes, peakCacheBytes: q.cache.peakBytes, questionMs: q.ms, decodeMs: t2 - t1 };
}

/** The question fed after a compressed context, on a copy of its cache. */
function feedQuestion(model: LlamaModel, context: CompressedContext, questionTokens: ArrayLike<number>, chunk?: number) {
  const cache = context.cache.clone();
  const n = questionTokens.length;
  const t0 = performance.now();
  let logits = context.lastLogits;
  if (n > 0) {
    const positions = new Int32Array(n);
    for (let i = 0; i < n; i++) positions[i] = context.nextPosition + i;
    logits = model.forward({ tokens: Int32Array.from(questionTokens), positions, cache, chunk });
  }
  return { cache, logits, nextPosition: context.nextPosition + n, ms: performance.now() - t0 };
}

/** answer(), cutting the cache during decoding (opts.decodeCompress); `contextTokens` are the context's ids. */
async function answerCompressing(
  model: LlamaModel,
  context: CompressedContext,
  contextTokens: ArrayLike<number>,
  questionTokens: ArrayLike<number>,
  opts: DecodeOpts,
): Promise<AnswerResult> {
  const q = feedQuestion(model, context, questionTokens, opts.chunk);
  const t1 = performance.now();
  const d = await decodingWith(
    model,
    q.cache,
    q.logits,
    q.nextPosition,
    [...Array.from(contextTokens), ...Array.from(questionTokens)],
    opts,
  );
  const t2 = performance.now();
  return { ...d, cacheBytes: q.cache.bytes, peakCacheBytes: q.cache.peakBytes, questionMs: q.ms, decodeMs: t2 - t1 };
}

/** Decode, with the cuts of opts.decodeCompress when given; `tokensSoFar` are the ids before nextPosition. */
async function decodingWith(
  model: LlamaModel,
  cache: KvCache,
  firstLogits: Float32Array,
  nextPosition: number,
  tokensSoFar: ArrayLike<number>,
  o: DecodeOpts,
): Promise<DecodeResult> {
  if (!o.decodeCompress) return decodeFrom(model, cache, firstLogits, nextPosition, o);
  const { maxNewTokens, stopTokens, sampler, observer, onToken } = o;
  return decodeCompressing(
    model,
    cache,
    { firstLogits, nextPosition, maxNewTokens, stopTokens, sampler, observer, onToken },
    o.decodeCompress,
    tokensSoFar,
    o.text,
  );
}

function compressOptionsOf(o: DecodeOpts): CompressOptions {
  return {
    chunk: o.chunk,
    eosTokenIds: o.stopTokens,
    text: o.text,
    chunkCompress: o.chunkCompress,
    progress: o.progress,
    kvDtype: o.kvDtype,
  };
}

export interface RunResult extends DecodeResult {
  plan: KeepPlan;
  promptLength: number;
  fullCacheBytes: number;
  /** live cache bytes right after eviction */
  cacheBytes: number;
  /** the most any cache of the run held at once (the full prefill's, for a one-shot compression) */
  peakCacheBytes: number;
  /** live cache bytes at the end (after the answer) */
  finalCacheBytes: number;
  prefillMs: number;
  selectMs: number;
  decodeMs: number;
}

/**
 * Query-aware generation: prefill the whole prompt (question included), compress it, and decode from the
 * prefill's last logits (so greedy decoding starts from the prefill's argmax token, as LAQ assumes).
 */
export async function runQueryAware(
  model: LlamaModel,
  promptTokens: ArrayLike<number>,
  press: Press | null,
  opts: DecodeOpts,
): Promise<RunResult> {
  const ctx = await prefillAndCompress(model, promptTokens, press, compressOptionsOf(opts));
  const t0 = performance.now();
  const d = await decodingWith(model, ctx.cache, ctx.lastLogits, ctx.nextPosition, promptTokens, opts);
  const t1 = performance.now();
  return {
    ...d,
    plan: ctx.plan,
    promptLength: ctx.promptLength,
    fullCacheBytes: ctx.fullCacheBytes,
    cacheBytes: ctx.cacheBytes,
    peakCacheBytes: ctx.cache.peakBytes,
    finalCacheBytes: ctx.cache.bytes,
    prefillMs: ctx.prefillMs,
    selectMs: ctx.selectMs,
    decodeMs: t1 - t0,
  };
}

/** Query-agnostic generation: one compressed context, then every question answered on its own copy. */
export async function runQueryAgnostic(
  model: LlamaModel,
  contextTokens: ArrayLike<number>,
  questions: ArrayLike<number>[],
  press: Press | null,
  opts: DecodeOpts,
): Promise<{ context: CompressedContext; answers: AnswerResult[] }> {
  const context = await prefillAndCompress(model, contextTokens, press, compressOptionsOf(opts));
  const answers = questions.map((q) => answer(model, context, q, opts));
  return { context, answers };
}

/** Which part of the prompt is compressed. */
export type PipelineMode = 'query-aware' | 'query-agnostic';
export const PIPELINE_MODES: readonly PipelineMode[] = ['query-aware', 'query-agnostic'];

/**
 * One sample in either mode, with one result shape: query-aware compresses context + question together;
 * query-agnostic compresses the context alone and feeds the question afterwards at the original positions.
 * `cacheBytes` is the size right after eviction in both modes.
 */
export async function runWithMode(
  model: LlamaModel,
  mode: PipelineMode,
  contextTokens: ArrayLike<number>,
  questionTokens: ArrayLike<number>,
  press: Press | null,
  opts: DecodeOpts,
): Promise<RunResult> {
  if (mode === 'query-aware') return runQueryAware(model, [...Array.from(contextTokens), ...Array.from(questionTokens)], press, opts);
  if (mode !== 'query-agnostic') throw new KvevictError(`--mode must be query-aware or query-agnostic, got "${String(mode)}"`);
  const ctx = await prefillAndCompress(model, contextTokens, press, compressOptionsOf(opts));
  const a = opts.decodeCompress
    ? await answerCompressing(model, ctx, contextTokens, questionTokens, opts)
    : answer(model, ctx, questionTokens, opts);
  return {
    tokens: a.tokens,
    steps: a.steps,
    finish: a.finish,
    plan: ctx.plan,
    promptLength: ctx.promptLength + questionTokens.length,
    fullCacheBytes: ctx.fullCacheBytes,
    cacheBytes: ctx.cacheBytes,
    peakCacheBytes: Math.max(ctx.cache.peakBytes, a.peakCacheBytes),
    finalCacheBytes: a.cacheBytes,
    prefillMs: ctx.prefillMs + a.questionMs,
    selectMs: ctx.selectMs,
    decodeMs: a.decodeMs,
  };
}

export interface GenerateOptions {
  maxNewTokens: number;
  stopTokens?: readonly number[];
  sampler?: Sampler;
  chunk?: number;
  topLogprobs?: number;
  /** the cache's storage (default f16) */
  kvDtype?: KvDtype;
}

export interface GenerateResult extends DecodeResult {
  cache: KvCache;
  prefillMs: number;
  decodeMs: number;
}

/** Prefill then decode with the full cache (no eviction). */
export function generateFromTokens(model: LlamaModel, promptTokens: ArrayLike<number>, o: GenerateOptions): GenerateResult {
  const p = prefill(model, promptTokens, { chunk: o.chunk, kvDtype: o.kvDtype });
  const t1 = performance.now();
  const d = decodeFrom(model, p.cache, p.lastLogits, p.nextPosition, o);
  const t2 = performance.now();
  return { ...d, cache: p.cache, prefillMs: p.prefillMs, decodeMs: t2 - t1 };
}

/** Decode from the logits of a prompt's (or a question's) last row, with the pipeline's options. */
function decodeFrom(
  model: LlamaModel,
  cache: KvCache,
  firstLogits: Float32Array,
  nextPosition: number,
  o: Omit<DecodeOpts, 'chunk' | 'text'> & { topLogprobs?: number },
): DecodeResult {
  const { maxNewTokens, stopTokens, sampler, observer, onToken, topLogprobs } = o;
  return decode(model, cache, { firstLogits, nextPosition, maxNewTokens, stopTokens, sampler, observer, onToken, topLogprobs });
}
