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

/** Weights of a Llama-family model, float32, Hugging Face names without the "model." prefix handled by the loader. */
export interface LayerWeights {
  inputNorm: Float32Array;
  q: Float32Array; // [H*d, hidden]
  k: Float32Array; // [Hkv*d, hidden]
  v: Float32Array; // [Hkv*d, hidden]
  o: Float32Array; // [hidden, H*d]
  qBias: Float32Array | null;
  kBias: Float32Array | null;
  vBias: Float32Array | null;
  qNorm: Float32Array | null; // [d] (qwen3)
  kNorm: Float32Array | null;
  postNorm: Float32Array;
  gate: Float32Array; // [inter, hidden]
  up: Float32Array; // [inter, hidden]
  down: Float32Array; // [hidden, inter]
}

export interface Weights {
  embed: Float32Array; // [vocab, hidden]
  layers: LayerWeights[];
  finalNorm: Float32Array;
  lmHead: Float32Array; // [vocab, hidden]; the same array as embed when tied
}
