import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../model/config.js';
import { writeSafetensors, type DType } from '../model/safetensors.js';
import { makeByteTokenizerConfig, makeByteTokenizerJson } from '../model/tokenizer.js';
import { SPECIAL_TOKENS, END_OF_TEXT, IM_END, IM_START } from './data/encode.js';
import { namedParams, type ModelParams } from './params.js';

/** The Hugging Face config.json object of a byte-level tied-embedding Llama. */
export function hfConfig(cfg: ModelConfig): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    vocab_size: cfg.vocabSize,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    max_position_embeddings: cfg.maxPositions,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    initializer_range: 0.02,
    bos_token_id: IM_START,
    eos_token_id: IM_END,
    pad_token_id: END_OF_TEXT,
    torch_dtype: 'float32',
  };
}

/** Write config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json. */
export function exportModel(dir: string, cfg: ModelConfig, params: ModelParams, metadata: Record<string, string> = {}, dtype: DType = 'F32'): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig(cfg), null, 2) + '\n');
  writeSafetensors(
    join(dir, 'model.safetensors'),
    namedParams(params).map(({ name, tensor }) => ({ name, shape: [...tensor.shape], data: tensor.data, dtype })),
    { format: 'pt', ...metadata },
  );
  const specials = [...SPECIAL_TOKENS];
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(makeByteTokenizerJson(specials), null, 1) + '\n');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(makeByteTokenizerConfig(specials), null, 2) + '\n');
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: IM_START, eos_token_id: [IM_END, END_OF_TEXT], pad_token_id: END_OF_TEXT, do_sample: false }, null, 2) + '\n');
}
