import type { KvCache, KvDtype } from '../cache/kv-cache.js';
import type { ModelConfig } from '../model/config.js';
import type { ForwardArgs, Weights } from '../model/types.js';
import type { SharedWork } from './shared-work.js';

/** What each KV head keeps after compression: [layer][kvHead] -> sorted prompt positions. */
export type KeepPlan = Int32Array[][];

/** The part of the engine a press may drive (LlamaModel satisfies it). */
export interface PressModel {
  readonly config: ModelConfig;
  /** the weights, for presses that read them (CriticalKV's output projection, Judge Q's and LookaheadKV's checks) */
  readonly weights?: Weights;
  newCache(dtype?: KvDtype): KvCache;
  forward(args: ForwardArgs): Float32Array;
}

/** What a press needs recorded while the prompt is prefilled (kept single-pass: nothing is recomputed). */
export interface CaptureRequest {
  /** the last `windowQueries` prompt rows' queries in every layer (SnapKV, LAQ++, TOVA) */
  windowQueries?: number;
  /** per layer and query head, the column sums of the full causal prompt attention (H2O) */
  columnSums?: boolean;
  /** per layer and query head, the sum and outer-product sum of the pre-RoPE queries after `sinks` rows (Expected Attention) */
  queryStats?: { sinks: number };
}

/** First and second moments of the pre-RoPE queries of one layer. */
export interface QueryStats {
  /** number of rows summed */
  count: number;
  /** [H, d] sum of the queries */
  sum: Float64Array;
  /** [H, d, d] sum of q q^T */
  outer: Float64Array;
}

/** What the prefill recorded for the presses. */
export interface Captured {
  /** per layer [rows, H, d] post-RoPE queries of the last rows of the prompt (null when not requested) */
  windowQueries: Float32Array[] | null;
  /** positions of those rows */
  windowPositions: Int32Array;
  /** per layer [H, L] column sums of the causal prompt attention, indexed by position - start */
  columnSums: Float64Array[] | null;
  /** per layer query statistics */
  queryStats: QueryStats[] | null;
}

/** What a press needs to write text into the model's input (KVzip's repeat instruction). */
export interface PromptText {
  /** the model's tokenizer, without special tokens */
  encode(text: string): ArrayLike<number>;
  /** in a chat, what closes the user's turn and opens the assistant's (the chat template's), else undefined */
  turnEnd?: string;
}

/** Everything a press may look at once the prompt has been prefilled into `cache` with the full cache. */
export interface PrefillRun {
  model: PressModel;
  /** the full prompt cache; a press must not modify it (the pipeline applies the plan) */
  cache: KvCache;
  tokens: Int32Array;
  /** L: number of prompt tokens */
  promptLength: number;
  /** position of the first prompt token (0 unless the prompt followed something kept in the cache) */
  startPosition: number;
  /** logits of the last prompt position */
  lastLogits: Float32Array;
  captured: Captured;
  /** end-of-sequence ids (LAQ stops its lookahead there) */
  eosTokenIds: readonly number[];
  /** the prompt's tokenizer, for presses that write text (KVzip); absent when the caller has none */
  text?: PromptText;
  /** budget-free work shared by presses over this same unchanged cache (an eval grid); absent: nothing shared */
  shared?: SharedWork;
}

/** A KV-cache eviction method: what to record during the prefill, then which entries each KV head keeps. */
export interface Press {
  readonly name: string;
  /**
   * Why the method needs the whole prompt at once (set by methods that cannot cut a prompt chunk by chunk:
   * H2O's column sums, Expected Attention's query statistics, KVzip's reconstruction); absent when it can.
   */
  readonly wholePrompt?: string;
  /** the budget the press keeps, when it has one (chunked compression needs an absolute budget) */
  readonly budget?: { budget: number } | { ratio: number };
  capture(promptLength: number): CaptureRequest;
  compress(run: PrefillRun): KeepPlan | Promise<KeepPlan>;
}

/**
 * A block of queries that scores the prompt keys: [n, H, d] after RoPE, with their positions. A causal row
 * sees the keys at positions <= its own; a non-causal row sees every prompt key. `visibleUpTo`, when given,
 * overrides both with an explicit last visible position per row (LAQ's reference mask).
 */
export interface QueryBlock {
  queries: Float32Array;
  positions: Int32Array;
  causal: boolean;
  visibleUpTo?: Int32Array;
}

/**
 * Where scoring queries come from (prompt window, LAQ lookahead, trained soft tokens, ...). A source may run
 * extra forward steps on a copy of the prompt cache (never on `run.cache` itself) and returns, per layer, a
 * block of queries. Sources combine: the scorer sums the attention of every block's rows.
 */
export interface QuerySource {
  readonly name: string;
  /** names these queries when they do not depend on the budget, so that scores from them can be shared; absent when they do */
  readonly shareKey?: string;
  capture(promptLength: number): CaptureRequest;
  /** per layer, one block; `budget` is the entries per KV head the press will keep (a cheap stage may use it) */
  queries(run: PrefillRun, budget: number): QueryBlock[] | Promise<QueryBlock[]>;
}

/** Scores of the candidate entries (the first n - window of each head), per layer and KV head; higher is kept. */
export type HeadScores = Float64Array[][];

/**
 * Scores the prompt entries. The last `window` entries of each head are kept without scoring. A head may hold
 * fewer entries than the prompt has tokens (a prompt compressed chunk by chunk): scores cover its own
 * entries, in order, but the last `window`.
 */
export interface Scorer {
  readonly name: string;
  /** see Press.wholePrompt */
  readonly wholePrompt?: string;
  /** the window this scorer keeps when nothing shrinks it */
  readonly window: number;
  capture(promptLength: number): CaptureRequest;
  /** `window` may be below `this.window` when a ratio gives a budget smaller than the window */
  score(run: PrefillRun, window: number, budget: number): HeadScores | Promise<HeadScores>;
}

/** How many candidates each head keeps: uniform, pyramid (per layer), adaptive (per head inside a layer). */
export interface Allocator {
  readonly name: string;
  /** Candidate indices kept per layer and KV head (sorted ascending), `candidates` being B - window. */
  allocate(scores: HeadScores, ctx: AllocationContext): Int32Array[][];
}

export interface AllocationContext {
  /** entries per KV head per layer, window included */
  budget: number;
  window: number;
  /** entries per head in the prompt cache */
  length: number;
  numLayers: number;
}
