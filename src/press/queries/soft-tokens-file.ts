import { firstNonFinite } from '../../model/weights.js';
/**
 * Trained Judge Q soft tokens on disk, and the model they belong to.
 *
 * A safetensors file with one tensor `soft_embeddings` [m, hidden] and string metadata: `format`
 * ("kvevict-judgeq-1"), `model_hash` (see `modelHash`), `soft_tokens`, `hidden_size`, and whatever the
 * trainer adds (`recipe` JSON, `steps`, ...). Soft tokens only make sense for the exact weights they were
 * trained on, so loading them for a model checks the hash.
 */
import { existsSync } from 'node:fs';
import { KvevictError } from '../../errors.js';
import type { ModelConfig } from '../../model/config.js';
import { modelHash } from '../../model/hash.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../../model/safetensors.js';
import type { Weights } from '../../model/types.js';

export { modelHash };

export const SOFT_TENSOR = 'soft_embeddings';
export const SOFT_FORMAT = 'kvevict-judgeq-1';

export interface SoftTokens {
  /** [count, hiddenSize] input embeddings */
  embeddings: Float32Array;
  count: number;
  hiddenSize: number;
  /** hash of the model they were trained for */
  modelHash: string;
  /** every metadata entry of the file */
  metadata: Record<string, string>;
  /** where they were read from ('' when built in memory) */
  file: string;
}

/** Write soft tokens with their metadata (atomically). `extra` entries must not reuse the reserved keys. */
export function saveSoftTokens(
  file: string,
  soft: Pick<SoftTokens, 'embeddings' | 'count' | 'hiddenSize' | 'modelHash'>,
  extra: Record<string, string> = {},
): void {
  if (soft.embeddings.length !== soft.count * soft.hiddenSize)
    throw new Error(`internal error: ${soft.embeddings.length} values for ${soft.count} x ${soft.hiddenSize} soft tokens`);
  const metadata: Record<string, string> = {
    ...extra,
    format: SOFT_FORMAT,
    model_hash: soft.modelHash,
    soft_tokens: String(soft.count),
    hidden_size: String(soft.hiddenSize),
  };
  writeSafetensors(file, [{ name: SOFT_TENSOR, shape: [soft.count, soft.hiddenSize], data: soft.embeddings }], metadata);
}

/** Read a soft-token file; a malformed one throws a KvevictError naming the file and what is wrong. */
export function loadSoftTokens(file: string): SoftTokens {
  if (!existsSync(file))
    throw new KvevictError(`${file}: soft-token file not found (train one with kvevict train-judgeq, or give --soft FILE)`);
  const header = readSafetensorsHeader(file);
  const info = header.tensors.get(SOFT_TENSOR);
  if (!info) throw new KvevictError(`${file}: no tensor "${SOFT_TENSOR}" (not a Judge Q soft-token file)`);
  if (info.shape.length !== 2 || info.shape[0] < 1 || info.shape[1] < 1) {
    throw new KvevictError(`${file}: tensor ${SOFT_TENSOR} must be [soft_tokens, hidden_size], got [${info.shape.join(', ')}]`);
  }
  const [count, hiddenSize] = info.shape;
  const meta = header.metadata;
  const modelHashValue = meta.model_hash;
  if (typeof modelHashValue !== 'string' || !/^[0-9a-f]{64}$/.test(modelHashValue)) {
    throw new KvevictError(`${file}: metadata "model_hash" is missing or not a sha256 hex digest`);
  }
  if (meta.soft_tokens !== undefined && Number(meta.soft_tokens) !== count) {
    throw new KvevictError(
      `${file}: metadata soft_tokens ${meta.soft_tokens} disagrees with tensor ${SOFT_TENSOR} [${info.shape.join(', ')}]`,
    );
  }
  if (meta.hidden_size !== undefined && Number(meta.hidden_size) !== hiddenSize) {
    throw new KvevictError(
      `${file}: metadata hidden_size ${meta.hidden_size} disagrees with tensor ${SOFT_TENSOR} [${info.shape.join(', ')}]`,
    );
  }
  const embeddings = readTensorF32(info, file);
  const bad = firstNonFinite(embeddings);
  if (bad >= 0) throw new KvevictError(`${file}: tensor ${SOFT_TENSOR} holds a non-finite value at index ${bad}`);
  return { embeddings, count, hiddenSize, modelHash: modelHashValue, metadata: { ...meta }, file };
}

/** What a trained file must agree with: its hidden size and the hash of the model it was trained for. */
export interface TrainedFor {
  where: string;
  hiddenSize: number;
  modelHash: string;
  /** 'soft tokens', 'LookaheadKV modules' */
  what: string;
  /** the command that trains them */
  tool: string;
}

/** Refuse a trained file (soft tokens, LookaheadKV modules) made for another model, saying which and what to do. */
export function checkTrainedFor(t: TrainedFor, config: ModelConfig, weights: Weights): void {
  const retrain = `train them for it with kvevict ${t.tool} --model DIR --out DIR/${t.tool.replace(/^train-/, '')}.safetensors (the default there)`;
  if (t.hiddenSize !== config.hiddenSize) {
    throw new KvevictError(
      `${t.where}: ${t.what} of hidden size ${t.hiddenSize} were trained for another model (this model's hidden_size is ${config.hiddenSize}); ${retrain}`,
    );
  }
  const mine = modelHash(config, weights);
  if (t.modelHash !== mine) {
    throw new KvevictError(
      `${t.where}: ${t.what} were trained for another model (model_hash ${t.modelHash.slice(0, 12)}..., this model is ${mine.slice(0, 12)}...); ${retrain}`,
    );
  }
}

/** Refuse soft tokens trained for another model, with a message that says which and what to do. */
export function checkSoftTokensFor(soft: SoftTokens, config: ModelConfig, weights: Weights): void {
  checkTrainedFor(
    {
      where: soft.file || 'soft tokens',
      hiddenSize: soft.hiddenSize,
      modelHash: soft.modelHash,
      what: 'soft tokens',
      tool: 'train-judgeq',
    },
    config,
    weights,
  );
}
