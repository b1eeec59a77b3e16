/**
 * Random models for tests: seeded weights in any config's exact shapes, small configs for each supported
 * architecture, and model folders written to disk (config.json, safetensors, tokenizer files).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../src/model/config.js';
import type { ModelConfig } from '../../src/model/config.js';
import type { DType } from '../../src/model/safetensors.js';
import type { FloatWeights as Weights } from '../../src/model/types.js';
import { allocateWeights, saveModelDir, tensorSlots } from '../../src/model/weights.js';
import { makeByteTokenizerConfig, makeByteTokenizerJson } from '../../src/model/tokenizer.js';
import { sharedData } from '../../src/paths.js';
import { Rng } from '../../src/util/rng.js';

/** The real SmolLM2-135M-Instruct tokenizer and config folder (read-only shared data). */
export const smolDir = join(sharedData, 'tokenizers', 'SmolLM2-135M-Instruct');

export type RawConfig = Record<string, unknown>;

/**
 * Fill `a` with uniform values of standard deviation `std` around `mean`. An inline xorshift32 seeded from `rng`
 * (fast enough for the 135M values of an exact-shape SmolLM2 in about a second).
 */
function uniformInto(rng: Rng, a: Float32Array, std: number, mean = 0): void {
  const half = std * Math.sqrt(3);
  const mul = (2 * half) / 4294967296;
  const off = mean - half;
  let x = rng.nextU32() | 1;
  for (let i = 0; i < a.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = off + (x >>> 0) * mul;
  }
}

/**
 * Seeded random weights in the config's exact shapes, allocated as a loaded model's are: matrices with std
 * `scale`, norm weights near 1 (1 +- 0.1), biases small (std `scale`). Tied models share embed and lmHead.
 */
export function randomWeights(cfg: ModelConfig, seed: number, scale = 0.02): Weights {
  const rng = new Rng(seed);
  const w = allocateWeights(cfg);
  for (const slot of tensorSlots(cfg)) {
    const a = slot.get(w) as Float32Array | null;
    if (a === null) continue;
    if (slot.name.endsWith('norm.weight')) uniformInto(rng, a, 0.1 / Math.sqrt(3), 1);
    else uniformInto(rng, a, scale);
  }
  return w;
}

/** SmolLM2-135M-Instruct's config.json as a raw object, with Hugging Face key overrides (e.g. num_hidden_layers). */
export function smolRawConfig(overrides: RawConfig = {}): RawConfig {
  const raw = JSON.parse(readFileSync(join(smolDir, 'config.json'), 'utf8')) as RawConfig;
  return { ...raw, ...overrides };
}

/** SmolLM2-135M-Instruct's parsed config, with raw Hugging Face key overrides. */
export function smolConfig(overrides: RawConfig = {}): ModelConfig {
  return parseConfig(smolRawConfig(overrides), 'SmolLM2-135M-Instruct/config.json');
}

export type TinyKind = 'llama' | 'llama3' | 'qwen2' | 'qwen3' | 'mistral';

/**
 * A small raw config.json per architecture: hidden 64, 4 heads, 2 KV heads, head_dim 16, 2 layers,
 * vocab 300 (fits the byte tokenizer: 256 bytes + specials). qwen2 has q/k/v biases, qwen3 q/k norms and
 * head_dim 24 (!= hidden/heads, as real Qwen3), llama3 is llama with llama3 rope_scaling, mistral is untied.
 */
export function tinyRawConfig(kind: TinyKind, overrides: RawConfig = {}): RawConfig {
  const base: RawConfig = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    vocab_size: 300,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 2048,
    tie_word_embeddings: true,
    bos_token_id: 257,
    eos_token_id: 258,
    torch_dtype: 'float32',
  };
  const perKind: Record<TinyKind, RawConfig> = {
    llama: {},
    llama3: {
      rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    },
    qwen2: { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', rope_theta: 1000000, rms_norm_eps: 1e-6 },
    qwen3: {
      architectures: ['Qwen3ForCausalLM'],
      model_type: 'qwen3',
      head_dim: 24,
      rope_theta: 1000000,
      rms_norm_eps: 1e-6,
      attention_bias: false,
    },
    mistral: { architectures: ['MistralForCausalLM'], model_type: 'mistral', tie_word_embeddings: false, rope_theta: 1000000 },
  };
  return { ...base, ...perKind[kind], ...overrides };
}

/** tinyRawConfig parsed. */
export function tinyConfig(kind: TinyKind, overrides: RawConfig = {}): ModelConfig {
  return parseConfig(tinyRawConfig(kind, overrides), `tiny-${kind}/config.json`);
}

/** Special tokens of the byte tokenizer used with tiny models: ids 256, 257, 258. */
export const BYTE_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

export interface RandomModelOptions {
  seed?: number;
  /** stored dtype (default F32) */
  dtype?: DType;
  /** number of safetensors shards (default 1) */
  shards?: number;
  /**
   * Tokenizer files: a folder to copy tokenizer.json/tokenizer_config.json from, 'bytes' for the byte-level
   * tokenizer (256 bytes + BYTE_SPECIALS, ChatML template), or 'none'. Default: the SmolLM2 folder when the
   * vocab holds its 49,152 tokens, else 'bytes'.
   */
  tokenizerFrom?: string;
  /** weight std (default 0.02) */
  scale?: number;
}

/** Write a random model folder; returns the parsed config and the float32 weights that were written. */
export function writeRandomModelDir(
  dir: string,
  rawConfig: RawConfig,
  opts: RandomModelOptions = {},
): { config: ModelConfig; weights: Weights } {
  const config = parseConfig(rawConfig, join(dir, 'config.json'));
  const weights = randomWeights(config, opts.seed ?? 1, opts.scale ?? 0.02);
  const tok = opts.tokenizerFrom ?? (config.vocabSize >= 49152 ? smolDir : 'bytes');
  saveModelDir(dir, rawConfig, config, weights, {
    dtype: opts.dtype ?? 'F32',
    shards: opts.shards ?? 1,
    ...(tok === 'bytes'
      ? { tokenizerJson: makeByteTokenizerJson(BYTE_SPECIALS), tokenizerConfigJson: makeByteTokenizerConfig(BYTE_SPECIALS) }
      : tok === 'none'
        ? {}
        : { tokenizerFrom: tok }),
  });
  return { config, weights };
}
