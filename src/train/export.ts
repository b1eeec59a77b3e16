import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hfConfigJson, type ModelConfig } from '../model/config.js';
import { writeSafetensors, type DType } from '../model/safetensors.js';
import { BYTE_VOCAB, type TrainVocab } from './data/vocab.js';
import { namedParams, type ModelParams } from './params.js';

/** The Hugging Face config.json object of a tied-embedding Llama trained here: ChatML's ids as bos, eos and pad. */
export function hfConfig(cfg: ModelConfig, vocab: TrainVocab = BYTE_VOCAB): Record<string, unknown> {
  return {
    ...hfConfigJson({ ...cfg, tieWordEmbeddings: true }),
    mlp_bias: false,
    initializer_range: 0.02,
    bos_token_id: vocab.imStart,
    eos_token_id: vocab.imEnd,
    pad_token_id: vocab.endOfText,
  };
}

/** Write config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json. */
export function exportModel(
  dir: string,
  cfg: ModelConfig,
  params: ModelParams,
  metadata: Record<string, string> = {},
  dtype: DType = 'F32',
  vocab: TrainVocab = BYTE_VOCAB,
): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig(cfg, vocab), null, 2) + '\n');
  writeSafetensors(
    join(dir, 'model.safetensors'),
    namedParams(params).map(({ name, tensor }) => ({ name, shape: [...tensor.shape], data: tensor.data, dtype })),
    { format: 'pt', ...metadata },
  );
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(vocab.tokenizerJson(), null, 1) + '\n');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(vocab.tokenizerConfig(), null, 2) + '\n');
  const gen = {
    bos_token_id: vocab.imStart,
    eos_token_id: [vocab.imEnd, vocab.endOfText],
    pad_token_id: vocab.endOfText,
    do_sample: false,
  };
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(gen, null, 2) + '\n');
}
