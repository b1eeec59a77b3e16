import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KvevictError } from '../errors.js';
import { loadConfig } from './config.js';
import { loadGguf } from './gguf.js';
import type { ModelConfig } from './config.js';
import { Tokenizer } from './tokenizer.js';
import type { Weights } from './types.js';
import { loadWeights } from './weights.js';

export interface LoadedModel {
  dir: string;
  config: ModelConfig;
  weights: Weights;
  tokenizer: Tokenizer;
}

/**
 * Load a Hugging Face model folder: config.json, safetensors weights (single or sharded; BF16 matrices kept as
 * bf16), tokenizer. A path to a .gguf file (float, or block-quantized matrices kept in their blocks) is loaded
 * with its embedded tokenizer.
 */
export function loadModelDir(dir: string): LoadedModel {
  if (!existsSync(dir)) throw new KvevictError(`${dir}: model folder not found`);
  if (!statSync(dir).isDirectory()) {
    if (dir.toLowerCase().endsWith('.gguf')) return { dir, ...loadGguf(dir) };
    throw new KvevictError(
      `${dir}: not a folder (a model is a folder with config.json, *.safetensors and tokenizer.json, or a .gguf file)`,
    );
  }
  const config = loadConfig(dir);
  const tokFile = join(dir, 'tokenizer.json');
  if (!existsSync(tokFile)) throw new KvevictError(`${tokFile}: file not found`);
  const tokenizer = Tokenizer.fromDir(dir, { eosTokenIds: config.eosTokenIds });
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new KvevictError(`${tokFile}: the tokenizer has ${tokenizer.vocabSize} tokens but config.json vocab_size is ${config.vocabSize}`);
  }
  // a bf16 file's matrices stay bf16 (half the memory); products widen them exactly
  const weights = loadWeights(dir, config, { keepBf16: true });
  return { dir, config, weights, tokenizer };
}
