import type { Bf16Matrix, QuantMatrix } from '../quant/formats.js';
import type { KvCache } from '../cache/kv-cache.js';

/** What a layer shows an observer during a forward pass. Arrays are views valid only during the callback. */
export interface LayerView {
  layer: number;
  /** absolute positions of the rows in this pass */
  positions: Int32Array;
  /** [rows, H, d], after RoPE */
  queries: Float32Array;
  /** [rows, Hkv, d], after RoPE */
  keys: Float32Array;
  /** [rows, Hkv, d] */
  values: Float32Array;
}

export type Observer = (view: LayerView) => void;

export interface ForwardArgs {
  /** token ids, or ... */
  tokens?: Int32Array;
  /** ... input embeddings [rows, hidden] (Judge Q soft tokens) */
  embeddings?: Float32Array;
  /** absolute position of each row; rows are appended to `cache` */
  positions: Int32Array;
  cache: KvCache;
  observer?: Observer;
  /** which rows' logits to return: the last row (default), all rows, or none */
  logits?: 'last' | 'all' | 'none';
  /** prefill chunk size in rows (default 512) */
  chunk?: number;
}

/**
 * A weight matrix as loaded: float32, IEEE half bits (a Uint16Array: an F16 file's matrices), kept in the
 * block format a quantized GGUF file stores, or as a bf16 file's bits (products read them as they are; floatMatrix() in weights.ts gives float32 values where a caller
 * needs them).
 */
export type MatrixData = Float32Array | Uint16Array | QuantMatrix | Bf16Matrix;

/** Weights of a Llama-family model, float32, Hugging Face names without the "model." prefix handled by the loader. */
export interface LayerWeights<M extends MatrixData = MatrixData> {
  inputNorm: Float32Array;
  q: M; // [H*d, hidden]
  k: M; // [Hkv*d, hidden]
  v: M; // [Hkv*d, hidden]
  o: M; // [hidden, H*d]
  qBias: Float32Array | null;
  kBias: Float32Array | null;
  vBias: Float32Array | null;
  qNorm: Float32Array | null; // [d] (qwen3)
  kNorm: Float32Array | null;
  postNorm: Float32Array;
  gate: M; // [inter, hidden]
  up: M; // [inter, hidden]
  down: M; // [hidden, inter]
}

/** A model's weights; Weights<Float32Array> when every matrix is float32 (safetensors, float GGUF, training). */
export interface Weights<M extends MatrixData = MatrixData> {
  embed: M; // [vocab, hidden]
  layers: LayerWeights<M>[];
  finalNorm: Float32Array;
  lmHead: M; // [vocab, hidden]; the same array as embed when tied
}

/** Weights whose every matrix is float32. */
export type FloatWeights = Weights<Float32Array>;
