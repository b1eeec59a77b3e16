/**
 * A loaded model written as a Hugging Face folder (`kvevict convert --to hf`): config.json, model.safetensors
 * (F32, F16 or BF16; quantized matrices dequantized, q/k rows already in Hugging Face's order), tokenizer.json
 * and tokenizer_config.json (a SentencePiece GGUF vocabulary rebuilt as a BPE tokenizer.json with byte fallback).
 */
import type { DType } from './safetensors.js';
import { hfConfigJson, type ModelConfig } from './config.js';
import type { Tokenizer } from './tokenizer.js';
import type { Weights } from './types.js';
import { saveModelDir } from './weights.js';
import { spmTokenizerJson } from './spm.js';

const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

export function writeHfFolder(dir: string, cfg: ModelConfig, weights: Weights, tok: Tokenizer, dtype: DType = 'F32'): void {
  const tokenizerJson = tok.spmVocab
    ? spmTokenizerJson(tok.spmVocab, { bosId: tok.bosTokenId, addBos: tok.addBosToken })
    : tok.tokenizerJson;
  const tokenizerConfigJson: Record<string, unknown> = {
    ...tok.tokenizerConfig,
    add_bos_token: tok.addBosToken,
    add_eos_token: tok.addEosToken,
    ...(tok.chatTemplate !== null ? { chat_template: tok.chatTemplate } : {}),
  };
  saveModelDir(dir, hfConfigJson(cfg, TORCH_DTYPE[dtype as keyof typeof TORCH_DTYPE] ?? 'float32'), cfg, weights, {
    dtype,
    tokenizerJson,
    tokenizerConfigJson,
  });
}
