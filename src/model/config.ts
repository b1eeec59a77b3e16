import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { KvevictError } from '../errors.js';

export type ModelType = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

/** Llama-3 style RoPE frequency scaling (rope_type "llama3"). */
export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/** The parts of a Hugging Face config.json the engine needs, normalised. */
export interface ModelConfig {
  modelType: ModelType;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  /**
   * Per-frequency divisors of the rotary frequencies, as a GGUF file's rope_freqs.weight stores Llama-3's
   * scaling (headDim / 2 of them); absent for configs read from config.json, which say ropeScaling instead.
   */
  ropeFreqFactors?: number[];
  maxPositions: number;
  tieWordEmbeddings: boolean;
  /** qwen2: q/k/v projections carry biases */
  attentionBias: boolean;
  /** qwen3: RMSNorm over each head of q and k before RoPE */
  qkNorm: boolean;
  bosTokenId: number | null;
  /** end-of-sequence ids from config.json (and generation_config.json when present) */
  eosTokenIds: number[];
}

const SUPPORTED: ModelType[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

function num(raw: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new KvevictError(`${file}: missing "${key}"`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new KvevictError(`${file}: "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** A size: a positive integer no larger than `max` (bounds far past any real model, so that a typo cannot allocate the machine away). */
function size(raw: Record<string, unknown>, key: string, file: string, max: number, fallback?: number): number {
  const v = num(raw, key, file, fallback);
  if (!Number.isInteger(v) || v < 1 || v > max) throw new KvevictError(`${file}: "${key}" must be an integer in 1..${max}, got ${v}`);
  return v;
}

/** Activations the engine computes (SwiGLU with SiLU); anything else would silently compute the wrong model. */
const ACTIVATIONS = ['silu', 'swish'];

function ids(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

export function readJson(file: string): unknown {
  if (!existsSync(file)) throw new KvevictError(`${file}: file not found`);
  const text = readFileSync(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KvevictError(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

const ARCHITECTURES: Record<ModelType, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
};

/** The Hugging Face config.json object of a config (parseConfig's inverse: parseConfig(hfConfigJson(c)) is c). */
export function hfConfigJson(cfg: ModelConfig, torchDtype: 'float32' | 'float16' | 'bfloat16' = 'float32'): Record<string, unknown> {
  const s = cfg.ropeScaling;
  if (cfg.ropeFreqFactors)
    throw new KvevictError(
      "the model's RoPE scaling is a table of per-frequency factors (GGUF rope_freqs.weight), which config.json's rope_scaling cannot hold",
    );
  return {
    architectures: [ARCHITECTURES[cfg.modelType]],
    model_type: cfg.modelType,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    vocab_size: cfg.vocabSize,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: s
      ? {
          rope_type: 'llama3',
          factor: s.factor,
          low_freq_factor: s.lowFreqFactor,
          high_freq_factor: s.highFreqFactor,
          original_max_position_embeddings: s.originalMaxPositionEmbeddings,
        }
      : null,
    max_position_embeddings: cfg.maxPositions,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    attention_bias: cfg.attentionBias,
    hidden_act: 'silu',
    ...(cfg.bosTokenId !== null ? { bos_token_id: cfg.bosTokenId } : {}),
    ...(cfg.eosTokenIds.length ? { eos_token_id: cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : cfg.eosTokenIds } : {}),
    torch_dtype: torchDtype,
  };
}

/** Parse a config.json object. `file` is used in error messages. */
export function parseConfig(raw: unknown, file = 'config.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new KvevictError(`${file}: expected a JSON object`);
  const r = raw as Record<string, unknown>;
  const modelType = r.model_type;
  if (typeof modelType !== 'string' || !SUPPORTED.includes(modelType as ModelType)) {
    throw new KvevictError(`${file}: unsupported model_type ${JSON.stringify(modelType)} (supported: ${SUPPORTED.join(', ')})`);
  }
  const hiddenSize = size(r, 'hidden_size', file, 65536);
  const numHeads = size(r, 'num_attention_heads', file, 1024);
  const numKvHeads = size(r, 'num_key_value_heads', file, 1024, numHeads);
  const headDim = num(r, 'head_dim', file, hiddenSize / numHeads);
  if (!(headDim > 0 && headDim <= 1024)) throw new KvevictError(`${file}: head_dim ${headDim} must be in 1..1024`);
  const act = r.hidden_act ?? r.hidden_activation ?? 'silu';
  if (typeof act !== 'string' || !ACTIVATIONS.includes(act))
    throw new KvevictError(`${file}: hidden_act ${JSON.stringify(act)} is not supported (supported: silu)`);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new KvevictError(`${file}: head_dim ${headDim} must be an even integer`);
  if (numHeads % numKvHeads !== 0)
    throw new KvevictError(`${file}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  let ropeScaling: Llama3RopeScaling | null = null;
  const rs = r.rope_scaling as Record<string, unknown> | null | undefined;
  if (rs && typeof rs === 'object') {
    const type = rs.rope_type ?? rs.type;
    if (type === 'llama3') {
      ropeScaling = {
        factor: num(rs, 'factor', `${file} rope_scaling`),
        lowFreqFactor: num(rs, 'low_freq_factor', `${file} rope_scaling`),
        highFreqFactor: num(rs, 'high_freq_factor', `${file} rope_scaling`),
        originalMaxPositionEmbeddings: num(rs, 'original_max_position_embeddings', `${file} rope_scaling`),
      };
    } else if (type !== 'default' && type !== undefined) {
      throw new KvevictError(`${file}: unsupported rope_scaling type ${JSON.stringify(type)} (supported: llama3)`);
    }
  }
  const rmsNormEps = num(r, 'rms_norm_eps', file, 1e-6);
  if (!(rmsNormEps > 0 && rmsNormEps < 1)) throw new KvevictError(`${file}: "rms_norm_eps" must be in (0, 1), got ${rmsNormEps}`);
  const ropeTheta = num(r, 'rope_theta', file, 10000);
  if (!(ropeTheta > 1)) throw new KvevictError(`${file}: "rope_theta" must be greater than 1, got ${ropeTheta}`);
  return {
    modelType: modelType as ModelType,
    hiddenSize,
    intermediateSize: size(r, 'intermediate_size', file, 1 << 18),
    numLayers: size(r, 'num_hidden_layers', file, 1024),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: size(r, 'vocab_size', file, 1 << 22),
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositions: size(r, 'max_position_embeddings', file, 1 << 24, 4096),
    tieWordEmbeddings: r.tie_word_embeddings === true,
    attentionBias: modelType === 'qwen2' ? r.attention_bias !== false : r.attention_bias === true,
    qkNorm: modelType === 'qwen3',
    bosTokenId: typeof r.bos_token_id === 'number' ? r.bos_token_id : null,
    eosTokenIds: ids(r.eos_token_id),
  };
}

/** Read `DIR/config.json` (and eos ids from `generation_config.json` when present). */
export function loadConfig(dir: string): ModelConfig {
  if (!existsSync(dir)) throw new KvevictError(`${dir}: model folder not found`);
  const file = join(dir, 'config.json');
  const cfg = parseConfig(readJson(file), file);
  const gen = join(dir, 'generation_config.json');
  if (existsSync(gen)) {
    const g = readJson(gen) as Record<string, unknown>;
    for (const id of ids(g.eos_token_id)) if (!cfg.eosTokenIds.includes(id)) cfg.eosTokenIds.push(id);
  }
  return cfg;
}

/** Inverse frequencies for RoPE, with Llama-3 scaling when configured (as transformers' _compute_llama3_parameters). */
export function ropeInvFreq(cfg: ModelConfig): Float64Array {
  const half = cfg.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim);
  const s = cfg.ropeScaling;
  if (s) {
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] = inv[i] / s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
      }
    }
  }
  if (cfg.ropeFreqFactors) for (let i = 0; i < half; i++) inv[i] /= cfg.ropeFreqFactors[i];
  return inv;
}

/** cos/sin tables [positions, headDim/2] for the kernels' rope(). */
export function ropeTables(cfg: ModelConfig, positions: number): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(cfg);
  const half = inv.length;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * inv[i];
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}
