import type { EvalCase } from './case.js';
import type { FidelityTrace, KeptPositions } from './fidelity.js';
import type { PreparedPrompt, TextTokenizer } from './prompt.js';
import type { Mode, PressSpec, Setting } from './settings.js';

export interface Timings {
  prefillMs: number;
  compressMs: number;
  decodeMs: number;
}

/** The full-cache run of a case: the reference for scores and fidelity. */
export interface FullRun {
  /** greedy answer tokens (a final stop token included when one ended the answer) */
  tokens: number[];
  /** the answer text (stop and special tokens left out) */
  text: string;
  /** logits that chose each answer token */
  logits: Float32Array[];
  /** keys of the whole prompt and the queries of the rows that chose the answer tokens */
  trace: FidelityTrace;
  cacheBytes: number;
  timings: Timings;
}

/** A compressed run of a case under one method and budget. */
export interface CompressedRun {
  tokens: number[];
  text: string;
  /** [layer][kvHead] kept positions of the compressible part */
  kept: KeptPositions;
  /** logits of the compressed cache fed the full run's answer tokens: [t] is the distribution over token t */
  forcedLogits: Float32Array[] | null;
  cacheBytes: number;
  /** the most cache bytes the compression held (the full prompt cache, unless it was chunked) */
  peakCacheBytes?: number;
  timings: Timings;
}

/** One case's prompt, opened once; the engine may share the prefill between settings. */
export interface EngineSession {
  full(): Promise<FullRun>;
  compressed(press: PressSpec, budget: number, mode: Mode, full: FullRun | null): Promise<CompressedRun>;
  close(): void;
}

/** What the grid runner needs from a model: the model runs behind this interface, fakes in tests. */
export interface EvalEngine {
  /** a name recorded in every row (the model folder) */
  readonly model: string;
  /** changes when the model's files change: a results folder refuses rows of another version */
  readonly fingerprint?: string;
  /** the model's context length in tokens */
  readonly maxContext: number;
  readonly tokenizer: TextTokenizer;
  /** throws a KvevictError naming the method or option when a setting cannot run, before any case runs */
  checkSetting(press: PressSpec, budget: number): void;
  /** `settings` are those this case will run (the engine prepares what their methods record) */
  open(prompt: PreparedPrompt, c: EvalCase, settings: readonly Setting[]): EngineSession;
}
