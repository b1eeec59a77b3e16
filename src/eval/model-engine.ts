import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DEFAULT_KV_DTYPE, type KvCache, type KvDtype } from '../cache/kv-cache.js';
import { decode } from '../generate/decode.js';
import { answer, compress, prefill, prefillAndCompress, type Prefilled } from '../generate/pipeline.js';
import type { LlamaModel } from '../model/llama.js';
import { readSafetensorsHeader } from '../model/safetensors.js';
import { pressFromSpec } from '../press/registry.js';
import type { Press } from '../press/types.js';
import { SharedWork } from '../press/shared-work.js';
import type { EvalCase } from './case.js';
import type { CompressedRun, EngineSession, EvalEngine, FullRun } from './engine.js';
import { promptKeys, queryRecorder } from './fidelity.js';
import { promptText, type PreparedPrompt, type TextTokenizer } from './prompt.js';
import { canonicalOptions, type Mode, type PressSpec, type Setting } from './settings.js';

/** The tokenizer the model engine needs: text, plus which ids end an answer and which are text at all. */
export interface EngineTokenizer extends TextTokenizer {
  readonly eosTokenIds: readonly number[];
  /** ids at or past this are not text (a model's vocabulary is often padded) */
  readonly vocabSize: number;
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
}

/**
 * The grid runner's engine over a LlamaModel and the presses: per case and mode, the prompt is prefilled
 * once (recording what every method of the grid needs) and each method compresses its own copy; the
 * full-cache run records the answer queries and logits the fidelity measures need.
 */
export interface ModelEngineOptions {
  chunk?: number;
  fingerprint?: string;
  chunkCompress?: number;
  kvDtype?: KvDtype;
}

export class ModelEngine implements EvalEngine {
  readonly maxContext: number;
  private readonly presses = new Map<string, Press>();

  /** prefill chunk size in rows (the engine's default when absent) */
  readonly chunk?: number;
  readonly fingerprint?: string;
  /** compress every prompt chunk by chunk, each setting on its own prefill (0: one shared prefill per mode) */
  readonly chunkCompress: number;
  /** how every run's cache stores keys and values */
  readonly kvDtype: KvDtype;

  constructor(
    readonly lm: LlamaModel,
    readonly tokenizer: EngineTokenizer,
    readonly model: string,
    o: ModelEngineOptions = {},
  ) {
    this.maxContext = lm.config.maxPositions;
    this.chunk = o.chunk;
    this.fingerprint = o.fingerprint;
    this.chunkCompress = o.chunkCompress ?? 0;
    this.kvDtype = o.kvDtype ?? DEFAULT_KV_DTYPE;
  }

  static nameOf(dir: string): string {
    return basename(dir.replace(/[/\\]+$/, '')) || dir;
  }

  /**
   * A short hash of the files that decide the model's outputs (config, tokenizer, weights: names, sizes and
   * modification times), so that editing a model card does not orphan a results folder. Trained press files
   * beside the weights (Judge Q's soft tokens, LookaheadKV's modules) are not the model's: the rows of the
   * methods that read them carry their identity (settingDigest), so adding one keeps every other row.
   */
  static fingerprintOf(dir: string): string {
    const h = createHash('sha256');
    const files = statSync(dir).isDirectory()
      ? readdirSync(dir)
          .filter((f) => definesOutputs(f, dir))
          .sort()
          .map((f) => join(dir, f))
      : [dir];
    for (const f of files) {
      const st = statSync(f);
      if (st.isFile()) h.update(`${basename(f)}:${st.size}:${Math.round(st.mtimeMs)}\n`);
    }
    return h.digest('hex').slice(0, 16);
  }

  press(spec: PressSpec, budget: number): Press {
    const key = JSON.stringify([spec.name, canonicalOptions(spec.options), budget]);
    let p = this.presses.get(key);
    if (!p) {
      p = pressFromSpec(spec, { budget });
      this.presses.set(key, p);
    }
    return p;
  }

  checkSetting(spec: PressSpec, budget: number): void {
    this.press(spec, budget);
  }

  open(prompt: PreparedPrompt, c: EvalCase, settings: readonly Setting[]): EngineSession {
    return new ModelSession(this, prompt, c, settings);
  }
}

class ModelSession implements EngineSession {
  private readonly states = new Map<Mode, Prefilled>();
  private readonly fullQueries: ReturnType<typeof queryRecorder>;
  private readonly stop: number[];

  constructor(
    private readonly engine: ModelEngine,
    private readonly prompt: PreparedPrompt,
    private readonly c: EvalCase,
    private readonly settings: readonly Setting[],
  ) {
    this.stop = [...new Set([...engine.tokenizer.eosTokenIds, ...engine.lm.config.eosTokenIds])];
    this.fullQueries = queryRecorder(engine.lm.config.numLayers);
  }

  private tokensOf(mode: Mode): Int32Array {
    const { contextTokens: ctx, questionTokens: q } = this.prompt;
    if (mode === 'query-agnostic') return ctx;
    const all = new Int32Array(ctx.length + q.length);
    all.set(ctx);
    all.set(q, ctx.length);
    return all;
  }

  /** The full-cache prefill of a mode's compressible tokens, recording every method's needs (shared by the grid). */
  private prefill(mode: Mode): Prefilled {
    const have = this.states.get(mode);
    if (have) return have;
    const tokens = this.tokensOf(mode);
    const L = tokens.length;
    const record = this.settings
      .filter((s) => s.mode === mode && s.press.name !== 'full')
      .map((s) => this.engine.press(s.press, s.budget).capture(L));
    // the full run's first answer token is chosen by the last prompt row
    if (mode === 'query-aware') this.fullQueries.wanted.add(L - 1);
    const state = prefill(this.engine.lm, tokens, {
      record,
      chunk: this.engine.chunk,
      kvDtype: this.engine.kvDtype,
      eosTokenIds: this.stop,
      observer: mode === 'query-aware' ? this.fullQueries.observer : undefined,
      text: promptText(this.engine.tokenizer, this.c.chat),
    });
    // the grid's presses copy what they keep, so this cache stays whole and they may share budget-free work
    state.shared = new SharedWork();
    this.states.set(mode, state);
    return state;
  }

  private text(tokens: number[], stopped: boolean): string {
    const tok = this.engine.tokenizer;
    const shown = (stopped ? tokens.slice(0, -1) : tokens).filter((id) => id < tok.vocabSize);
    return tok.decode(shown, { skipSpecialTokens: true });
  }

  async full(): Promise<FullRun> {
    const { lm } = this.engine;
    const p = this.prefill('query-aware');
    const L = p.promptLength;
    const keys = promptKeys(p.cache, L);
    const rec = this.fullQueries;
    for (let i = 0; i < this.c.maxNewTokens; i++) rec.wanted.add(L + i);
    const t0 = performance.now();
    const d = decode(lm, p.cache.clone(), {
      firstLogits: p.lastLogits,
      nextPosition: L,
      maxNewTokens: this.c.maxNewTokens,
      stopTokens: this.stop,
      observer: rec.observer,
      topLogprobs: 0,
      keepLogits: true,
    });
    const decodeMs = performance.now() - t0;
    const cfg = lm.config;
    const queries = d.tokens.map((_, t) => {
      const q = rec.take(L - 1 + t);
      if (!q) throw new Error(`internal error: no query recorded at position ${L - 1 + t}`);
      return q;
    });
    return {
      tokens: d.tokens,
      text: this.text(d.tokens, d.finish === 'stop'),
      logits: d.logits!,
      trace: { layers: cfg.numLayers, heads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: cfg.headDim, length: L, keys, queries },
      cacheBytes: p.cache.bytes,
      timings: { prefillMs: p.prefillMs, compressMs: 0, decodeMs },
    };
  }

  async compressed(spec: PressSpec, budget: number, mode: Mode, full: FullRun | null): Promise<CompressedRun> {
    const { lm } = this.engine;
    const press = this.engine.press(spec, budget);
    const chunked = this.engine.chunkCompress > 0 && spec.name !== 'full';
    const ctx = chunked
      ? await prefillAndCompress(lm, this.tokensOf(mode), press, {
          chunkCompress: this.engine.chunkCompress,
          chunk: this.engine.chunk,
          kvDtype: this.engine.kvDtype,
          eosTokenIds: this.stop,
          text: promptText(this.engine.tokenizer, this.c.chat),
        })
      : await compress(this.prefill(mode), press, { copy: true });
    const L = ctx.promptLength;
    const { cache: compressed, plan, cacheBytes, selectMs: compressMs } = ctx;
    // a one-shot compression held the full prompt cache; a chunked one never more than its own peak
    const peakCacheBytes = chunked ? compressed.peakBytes : ctx.fullCacheBytes;
    const question = mode === 'query-agnostic' ? this.prompt.questionTokens : new Int32Array(0);
    const t1 = performance.now();
    const out =
      mode === 'query-agnostic'
        ? answer(lm, ctx, question, { maxNewTokens: this.c.maxNewTokens, stopTokens: this.stop, chunk: this.engine.chunk })
        : decode(lm, compressed.clone(), {
            firstLogits: ctx.lastLogits,
            nextPosition: L,
            maxNewTokens: this.c.maxNewTokens,
            stopTokens: this.stop,
          });
    const decodeMs = performance.now() - t1;
    return {
      tokens: out.tokens,
      text: this.text(out.tokens, out.finish === 'stop'),
      kept: plan,
      forcedLogits: full ? this.forced(compressed, L, ctx.lastLogits, question, full.tokens) : null,
      cacheBytes,
      peakCacheBytes,
      timings: { prefillMs: ctx.prefillMs, compressMs, decodeMs },
    };
  }

  /**
   * The compressed cache's next-token distributions along the full run's answer: the question (if fed
   * after compression) and the answer tokens but the last go in as one block; the rows that predict
   * answer tokens are returned. Without a question, the first distribution is the prefill's own.
   */
  private forced(compressed: KvCache, L: number, lastLogits: Float32Array, question: Int32Array, answerTokens: number[]): Float32Array[] {
    const { lm } = this.engine;
    const T = answerTokens.length;
    if (T === 0) return [];
    const feed = Int32Array.from([...question, ...answerTokens.slice(0, T - 1)]);
    const room = lm.config.maxPositions - L;
    const n = Math.min(feed.length, room);
    const out: Float32Array[] = [];
    if (question.length === 0) out.push(lastLogits);
    if (n === 0) return out;
    const vocab = lm.config.vocabSize;
    const all = lm.forward({
      tokens: feed.subarray(0, n),
      positions: Int32Array.from({ length: n }, (_, i) => L + i),
      cache: compressed.clone(),
      logits: 'all',
      chunk: this.engine.chunk,
    });
    const first = question.length === 0 ? 0 : question.length - 1;
    for (let r = first; r < n && out.length < T; r++) out.push(all.subarray(r * vocab, (r + 1) * vocab));
    return out;
  }

  close(): void {
    this.states.clear();
  }
}

/** Files of a model folder that change what it computes (model cards, curves and reports do not). */
const OUTPUT_FILES = new Set([
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'model.safetensors.index.json',
]);
export function definesOutputs(name: string, dir?: string): boolean {
  if (OUTPUT_FILES.has(name) || name.endsWith('.gguf')) return true;
  return name.endsWith('.safetensors') && !(dir !== undefined && isTrainedPressFile(join(dir, name)));
}

/** A file trained for a model (it records the model's hash), not part of it. */
function isTrainedPressFile(file: string): boolean {
  try {
    return typeof readSafetensorsHeader(file).metadata.model_hash === 'string';
  } catch {
    return false; // unreadable: counted as the model's, whose loading then says what is wrong
  }
}
