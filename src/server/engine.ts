/**
 * The server's scheduler: requests wait in a bounded queue; one at a time is prefilled (and compressed) in
 * slices, and between slices every sequence that is generating takes one decode step, all of them together
 * (LlamaModel.forwardBatch: one pass over the weights for the whole batch). So a long prompt delays each
 * stream by a slice at a time, never by its whole prefill. A cancelled request (its client went away) leaves
 * the queue or the batch at the next step and its cache is freed.
 *
 * Query-agnostic requests with a press compress their context once: the compressed context is kept under a
 * content key (stores.ts) and a later request with the same context, press and budget skips its prefill.
 */
import { tokenCacheBytes, type KvDtype } from '../cache/kv-cache.js';
import { KvevictError } from '../errors.js';
import { compress, prefillSteps, type CompressedContext, type PipelineMode } from '../generate/pipeline.js';
import type { Sampler } from '../generate/sampling.js';
import type { LlamaModel } from '../model/llama.js';
import type { Tokenizer } from '../model/tokenizer.js';
import type { Press, PromptText } from '../press/types.js';
import { contextKey, type MemoryLru, type SharedStore } from './stores.js';

/** Prompt rows prefilled between two decode steps of the running streams. */
export const PREFILL_SLICE = 256;

/** The eviction a request asked for (null: the full cache). */
export interface Compression {
  press: Press;
  name: string;
  options: Record<string, string | number | boolean>;
  budget?: number;
  ratio?: number;
}

export interface JobSpec {
  /** query-agnostic: the part compressed and reused; query-aware: the prompt's start (the question follows) */
  contextTokens: number[];
  /** fed after the compressed context (query-agnostic) or compressed with it (query-aware) */
  questionTokens: number[];
  mode: PipelineMode;
  compression: Compression | null;
  /** the context opens a user turn of the chat template (recorded with a stored context) */
  chat: boolean;
  maxNewTokens: number;
  sampler: Sampler;
  stopStrings: string[];
  text?: PromptText;
}

export interface JobResult {
  text: string;
  tokens: number[];
  finish: 'stop' | 'length';
  promptTokens: number;
  completionTokens: number;
  fullCacheBytes: number;
  keptCacheBytes: number;
  contextReused: boolean;
  prefillMs: number;
  decodeMs: number;
}

export interface JobEvents {
  /** new text of the answer (held back while it could be the start of a stop string) */
  onDelta?(text: string): void;
  onFinish(r: JobResult): void;
  onError(e: Error): void;
}

export class QueueFullError extends KvevictError {}

export interface EngineStats {
  storeHits: { memory: number; shared: number };
  storeMisses: number;
  decodeSteps: number;
  decodeRows: number;
}

interface Job {
  spec: JobSpec;
  events: JobEvents;
  cancelled: boolean;
  t0: number;
}

/** A request that is generating. */
interface Sequence {
  job: Job;
  cache: CompressedContext['cache'];
  logits: Float32Array;
  nextPosition: number;
  tokens: number[];
  stop: Set<number>;
  emitted: number;
  text: string;
  result: Omit<JobResult, 'text' | 'tokens' | 'finish' | 'completionTokens' | 'decodeMs'>;
  decodeStart: number;
}

export interface EngineOptions {
  kvDtype: KvDtype;
  memory: MemoryLru;
  shared: SharedStore | null;
  maxQueue: number;
  /** sequences decoded together in one step (1: one at a time, first come first served); default 32 */
  maxBatch?: number;
  /** a shared store that failed (unreachable Redis): logged, the request goes on without it */
  warn?: (message: string) => void;
}

export class Engine {
  private readonly waiting: Job[] = [];
  private active: Sequence[] = [];
  private prefilling: Job | null = null;
  private decoding = false;
  private turnWaiters: (() => void)[] = [];
  readonly stats: EngineStats = { storeHits: { memory: 0, shared: 0 }, storeMisses: 0, decodeSteps: 0, decodeRows: 0 };

  constructor(
    readonly model: LlamaModel,
    readonly tokenizer: Tokenizer,
    readonly opts: EngineOptions,
  ) {}

  /** Requests waiting for their prefill (the one being prefilled included). */
  get queueDepth(): number {
    return this.waiting.length + (this.prefilling ? 1 : 0);
  }

  get activeSequences(): number {
    return this.active.length;
  }

  /** Queue a request; throws QueueFullError when --max-queue requests already wait. Returns its cancel. */
  submit(spec: JobSpec, events: JobEvents): () => void {
    if (this.waiting.length >= this.opts.maxQueue) throw new QueueFullError(`the queue is full (${this.opts.maxQueue} requests wait)`);
    const job: Job = { spec, events, cancelled: false, t0: performance.now() };
    this.waiting.push(job);
    void this.prefillWorker();
    return () => {
      job.cancelled = true;
      const i = this.waiting.indexOf(job);
      if (i >= 0) this.waiting.splice(i, 1);
    };
  }

  private async prefillWorker(): Promise<void> {
    if (this.prefilling) return;
    while (this.waiting.length) {
      const job = this.waiting.shift()!;
      if (job.cancelled) continue;
      this.prefilling = job;
      try {
        const seq = await this.prepare(job);
        if (seq && !job.cancelled) {
          this.active.push(seq);
          void this.decodeLoop();
        }
      } catch (e) {
        if (!job.cancelled) job.events.onError(e as Error);
      }
      this.prefilling = null;
    }
  }

  /** Resolves after the next decode step of the running streams (at once when none runs). */
  private turn(): Promise<void> {
    if (!this.decoding) return new Promise((r) => setImmediate(r));
    return new Promise((r) => this.turnWaiters.push(r));
  }

  /** Prefill `tokens` slice by slice, then keep what `press` chooses (everything when null). */
  private async compressInSlices(job: Job, tokens: number[], press: Press | null): Promise<CompressedContext | null> {
    const steps = prefillSteps(
      this.model,
      tokens,
      {
        record: press ? [press.capture(tokens.length)] : [],
        kvDtype: this.opts.kvDtype,
        eosTokenIds: this.tokenizer.eosTokenIds,
        text: job.spec.text,
      },
      PREFILL_SLICE,
    );
    for (;;) {
      const r = steps.next();
      if (r.done) return compress(r.value, press);
      await this.turn();
      if (job.cancelled) return null;
    }
  }

  private async storedContext(key: string): Promise<CompressedContext | null> {
    const mem = this.opts.memory.get(key);
    if (mem) {
      this.stats.storeHits.memory++;
      return mem.context;
    }
    const shared = this.opts.shared;
    if (shared) {
      try {
        const s = await shared.get(key, this.model);
        if (s) {
          this.stats.storeHits.shared++;
          this.opts.memory.put(key, s);
          return s.context;
        }
      } catch (e) {
        this.opts.warn?.(`context store (${shared.kind}): ${(e as Error).message}`);
      }
    }
    this.stats.storeMisses++;
    return null;
  }

  private async prepare(job: Job): Promise<Sequence | null> {
    const { spec } = job;
    const cfg = this.model.config;
    const all = [...spec.contextTokens, ...spec.questionTokens];
    const fullCacheBytes = all.length * tokenCacheBytes(cfg, this.opts.kvDtype);
    const t0 = performance.now();
    const c = spec.compression;
    let cache: CompressedContext['cache'];
    let logits: Float32Array;
    let keptCacheBytes: number;
    let contextReused = false;
    if (spec.mode === 'query-agnostic' && c && spec.contextTokens.length > 0) {
      const key = contextKey(this.model, this.opts.kvDtype, spec.contextTokens, c.name, c.options, c, spec.text?.turnEnd ?? '');
      let ctx = await this.storedContext(key);
      if (ctx) contextReused = true;
      else {
        ctx = await this.compressInSlices(job, spec.contextTokens, c.press);
        if (!ctx) return null;
        const stored = {
          context: ctx,
          origin: { tokens: spec.contextTokens, press: c.name, pressOptions: c.options, budget: c.budget, ratio: c.ratio, chat: spec.chat },
        };
        this.opts.memory.put(key, stored);
        if (this.opts.shared) {
          try {
            await this.opts.shared.put(key, this.model, stored);
          } catch (e) {
            this.opts.warn?.(`context store (${this.opts.shared.kind}): ${(e as Error).message}`);
          }
        }
      }
      keptCacheBytes = ctx.cacheBytes;
      // the question on the request's own copy of the context
      cache = ctx.cache.clone();
      logits = ctx.lastLogits;
      const n = spec.questionTokens.length;
      if (n > 0) {
        const positions = Int32Array.from({ length: n }, (_, i) => ctx.nextPosition + i);
        logits = this.model.forward({ tokens: Int32Array.from(spec.questionTokens), positions, cache });
      }
    } else {
      const ctx = await this.compressInSlices(job, all, c?.press ?? null);
      if (!ctx) return null;
      cache = ctx.cache;
      logits = ctx.lastLogits;
      keptCacheBytes = ctx.cacheBytes;
    }
    if (job.cancelled) return null;
    return {
      job,
      cache,
      logits: Float32Array.from(logits),
      nextPosition: all.length,
      tokens: [],
      stop: new Set(this.tokenizer.eosTokenIds),
      emitted: 0,
      text: '',
      result: { promptTokens: all.length, fullCacheBytes, keptCacheBytes, contextReused, prefillMs: performance.now() - t0 },
      decodeStart: performance.now(),
    };
  }

  private async decodeLoop(): Promise<void> {
    if (this.decoding) return;
    this.decoding = true;
    try {
      while (this.active.length) {
        this.decodeStep();
        this.turnWaiters.shift()?.();
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.decoding = false;
      for (const w of this.turnWaiters.splice(0)) w();
    }
  }

  private decodeStep(): void {
    const going: Sequence[] = [];
    const live = this.active.filter((s) => !s.job.cancelled);
    const batch = live.slice(0, this.opts.maxBatch ?? 32);
    const later = live.slice(batch.length);
    for (const s of batch) {
      try {
        if (this.choose(s)) going.push(s);
      } catch (e) {
        s.job.events.onError(e as Error);
      }
    }
    this.active = [...going, ...later];
    if (!going.length) return;
    const n = going.length,
      vocab = this.model.config.vocabSize;
    const logits = this.model.forwardBatch(
      Int32Array.from(going.map((s) => s.tokens[s.tokens.length - 1])),
      Int32Array.from(going.map((s) => s.nextPosition++)),
      going.map((s) => s.cache),
    );
    going.forEach((s, r) => s.logits.set(logits.subarray(r * vocab, (r + 1) * vocab)));
    this.stats.decodeSteps++;
    this.stats.decodeRows += n;
  }

  /** Pick a sequence's next token; false when it has finished (its result is sent). */
  private choose(s: Sequence): boolean {
    const { spec } = s.job;
    if (spec.maxNewTokens === 0) return this.finish(s, 'length');
    const token = spec.sampler(s.logits);
    s.tokens.push(token);
    if (s.stop.has(token)) return this.finish(s, 'stop');
    const tok = this.tokenizer;
    const text = tok.decode(
      s.tokens.filter((id) => id < tok.vocabSize),
      { skipSpecialTokens: true },
    );
    for (const stop of spec.stopStrings) {
      const at = text.indexOf(stop);
      if (at >= 0) {
        s.text = text.slice(0, at);
        return this.finish(s, 'stop');
      }
    }
    s.text = text;
    // hold back an unfinished character and what could be the start of a stop string
    let safe = text.length;
    while (safe > s.emitted && text.charCodeAt(safe - 1) === 0xfffd) safe--;
    for (const stop of spec.stopStrings)
      for (let k = Math.min(stop.length - 1, safe - s.emitted); k > 0; k--)
        if (text.slice(safe - k, safe) === stop.slice(0, k)) {
          safe -= k;
          break;
        }
    if (safe > s.emitted) {
      s.job.events.onDelta?.(text.slice(s.emitted, safe));
      s.emitted = safe;
    }
    if (s.tokens.length >= spec.maxNewTokens || s.nextPosition >= this.model.config.maxPositions) return this.finish(s, 'length');
    return true;
  }

  private finish(s: Sequence, finish: 'stop' | 'length'): false {
    if (s.text.length > s.emitted) s.job.events.onDelta?.(s.text.slice(s.emitted));
    s.emitted = s.text.length;
    const counted = finish === 'stop' && s.stop.has(s.tokens[s.tokens.length - 1]) ? s.tokens.slice(0, -1) : s.tokens;
    s.job.events.onFinish({
      ...s.result,
      text: s.text,
      tokens: counted,
      finish,
      completionTokens: s.tokens.length,
      decodeMs: performance.now() - s.decodeStart,
    });
    return false;
  }
}
