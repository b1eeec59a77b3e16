/**
 * Trained LookaheadKV modules on disk, and the model they belong to.
 *
 * A safetensors file with the tensor `lookahead_embeddings` [m, hidden] and, per layer l and LoRA target t
 * (q k v o gate up down), `lora.l.t.a` [rank, in] and `lora.l.t.b` [out, rank], the update being
 * W + (alpha / rank) B A on the lookahead rows only. String metadata: `format` ("kvevict-lookaheadkv-1"),
 * `model_hash` (see `modelHash`), `lookahead_tokens`, `hidden_size`, `num_layers`, `lora_rank`, `lora_alpha`,
 * `lora_targets` (comma-separated), and whatever the trainer adds (`recipe` JSON, `steps`, ...). The modules
 * only make sense for the exact weights they were trained on, so loading them for a model checks the hash.
 */
import { existsSync } from 'node:fs';
import { KvevictError } from '../../errors.js';
import type { ModelConfig } from '../../model/config.js';
import { LORA_TARGETS, loraShape, type LoraTarget } from '../../model/appended-rows.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type TensorToWrite } from '../../model/safetensors.js';
import type { Weights } from '../../model/types.js';
import { firstNonFinite } from '../../model/weights.js';
import { checkTrainedFor } from './soft-tokens-file.js';

export const LOOKAHEAD_TENSOR = 'lookahead_embeddings';
export const LOOKAHEAD_FORMAT = 'kvevict-lookaheadkv-1';

/** One layer's adapters as plain arrays: a [rank, in], b [out, rank]. */
export type LoraArrays = Partial<Record<LoraTarget, { a: Float32Array; b: Float32Array }>>;

export interface LookaheadModules {
  /** [count, hiddenSize] input embeddings of the lookahead tokens */
  embeddings: Float32Array;
  count: number;
  hiddenSize: number;
  numLayers: number;
  rank: number;
  alpha: number;
  targets: LoraTarget[];
  /** per layer */
  lora: LoraArrays[];
  modelHash: string;
  metadata: Record<string, string>;
  /** where they were read from ('' when built in memory) */
  file: string;
}

const pairName = (l: number, t: LoraTarget, ab: 'a' | 'b') => `lora.${l}.${t}.${ab}`;

/** Write the modules with their metadata. `extra` entries must not reuse the reserved keys. */
export function saveLookaheadModules(
  file: string,
  m: Omit<LookaheadModules, 'metadata' | 'file'>,
  shapes: (t: LoraTarget) => [number, number],
  extra: Record<string, string> = {},
): void {
  const tensors: TensorToWrite[] = [{ name: LOOKAHEAD_TENSOR, shape: [m.count, m.hiddenSize], data: m.embeddings }];
  m.lora.forEach((layer, l) => {
    for (const t of m.targets) {
      const p = layer[t];
      if (!p) throw new Error(`internal error: layer ${l} has no ${t} adapter`);
      const [out, inDim] = shapes(t);
      tensors.push({ name: pairName(l, t, 'a'), shape: [m.rank, inDim], data: p.a });
      tensors.push({ name: pairName(l, t, 'b'), shape: [out, m.rank], data: p.b });
    }
  });
  writeSafetensors(file, tensors, {
    ...extra,
    format: LOOKAHEAD_FORMAT,
    model_hash: m.modelHash,
    lookahead_tokens: String(m.count),
    hidden_size: String(m.hiddenSize),
    num_layers: String(m.numLayers),
    lora_rank: String(m.rank),
    lora_alpha: String(m.alpha),
    lora_targets: m.targets.join(','),
  });
}

/** Parse `lora_targets`-style lists ("q,k,v,o,gate,up,down"); `where` names the file or option in errors. */
export function parseLoraTargets(s: string, where: string): LoraTarget[] {
  const out: LoraTarget[] = [];
  for (const t of s.split(',').map((x) => x.trim())) {
    if (t === '') continue;
    if (!(LORA_TARGETS as readonly string[]).includes(t))
      throw new KvevictError(`${where}: unknown LoRA target "${t}" (known: ${LORA_TARGETS.join(', ')})`);
    if (out.includes(t as LoraTarget)) throw new KvevictError(`${where}: LoRA target "${t}" given twice`);
    out.push(t as LoraTarget);
  }
  return out;
}

/** Read a LookaheadKV file; a malformed one throws a KvevictError naming the file and what is wrong. */
export function loadLookaheadModules(file: string): LookaheadModules {
  if (!existsSync(file))
    throw new KvevictError(`${file}: LookaheadKV file not found (train one with kvevict train-lookaheadkv, or give modules=FILE)`);
  const header = readSafetensorsHeader(file);
  const meta = header.metadata;
  const info = header.tensors.get(LOOKAHEAD_TENSOR);
  if (!info) throw new KvevictError(`${file}: no tensor "${LOOKAHEAD_TENSOR}" (not a LookaheadKV file)`);
  if (meta.format !== LOOKAHEAD_FORMAT)
    throw new KvevictError(`${file}: metadata "format" is ${JSON.stringify(meta.format)}, not "${LOOKAHEAD_FORMAT}"`);
  if (info.shape.length !== 2 || info.shape[0] < 1 || info.shape[1] < 1)
    throw new KvevictError(`${file}: tensor ${LOOKAHEAD_TENSOR} must be [lookahead_tokens, hidden_size], got [${info.shape.join(', ')}]`);
  const [count, hiddenSize] = info.shape;
  if (typeof meta.model_hash !== 'string' || !/^[0-9a-f]{64}$/.test(meta.model_hash))
    throw new KvevictError(`${file}: metadata "model_hash" is missing or not a sha256 hex digest`);
  const int = (key: string, min: number): number => {
    const v = Number(meta[key]);
    if (meta[key] === undefined || !Number.isInteger(v) || v < min)
      throw new KvevictError(`${file}: metadata "${key}" must be an integer >= ${min}, got ${JSON.stringify(meta[key])}`);
    return v;
  };
  if (int('lookahead_tokens', 1) !== count || int('hidden_size', 1) !== hiddenSize)
    throw new KvevictError(
      `${file}: metadata lookahead_tokens / hidden_size disagree with tensor ${LOOKAHEAD_TENSOR} [${info.shape.join(', ')}]`,
    );
  const numLayers = int('num_layers', 1);
  const rank = int('lora_rank', 1);
  const alpha = Number(meta.lora_alpha);
  if (!(Number.isFinite(alpha) && alpha > 0))
    throw new KvevictError(`${file}: metadata "lora_alpha" must be a positive number, got ${JSON.stringify(meta.lora_alpha)}`);
  const targets = parseLoraTargets(meta.lora_targets ?? '', `${file}: metadata lora_targets`);
  const read = (name: string, rows: number | null, cols: number | null): Float32Array => {
    const t = header.tensors.get(name);
    if (!t) throw new KvevictError(`${file}: no tensor "${name}" (lora_targets lists ${targets.join(',')} for ${numLayers} layers)`);
    if (t.shape.length !== 2 || (rows !== null && t.shape[0] !== rows) || (cols !== null && t.shape[1] !== cols))
      throw new KvevictError(`${file}: tensor ${name} has shape [${t.shape.join(', ')}], expected [${rows ?? 'out'}, ${cols ?? 'in'}]`);
    const data = readTensorF32(t, file);
    const bad = firstNonFinite(data);
    if (bad >= 0) throw new KvevictError(`${file}: tensor ${name} holds a non-finite value at index ${bad}`);
    return data;
  };
  const embeddings = read(LOOKAHEAD_TENSOR, count, hiddenSize);
  const lora: LoraArrays[] = [];
  for (let l = 0; l < numLayers; l++) {
    const layer: LoraArrays = {};
    for (const t of targets) {
      // the out and in sizes are checked against the model when the modules are used (checkLookaheadFor)
      layer[t] = { a: read(pairName(l, t, 'a'), rank, null), b: read(pairName(l, t, 'b'), null, rank) };
    }
    lora.push(layer);
  }
  return { embeddings, count, hiddenSize, numLayers, rank, alpha, targets, lora, modelHash: meta.model_hash, metadata: { ...meta }, file };
}

/** Refuse modules trained for another model, with a message that says which and what to do. */
export function checkLookaheadFor(m: LookaheadModules, config: ModelConfig, weights: Weights): void {
  const where = m.file || 'LookaheadKV modules';
  const retrain = 'train them for it with kvevict train-lookaheadkv --model DIR';
  if (m.numLayers !== config.numLayers)
    throw new KvevictError(
      `${where}: LookaheadKV modules of ${m.numLayers} layers were trained for another model (this model has ${config.numLayers}); ${retrain}`,
    );
  m.lora.forEach((layer, l) => {
    for (const t of m.targets) {
      const [out, inDim] = loraShape(config, t);
      const p = layer[t]!;
      if (p.a.length !== m.rank * inDim || p.b.length !== out * m.rank)
        throw new KvevictError(`${where}: the layer ${l} ${t} adapter does not fit this model ([${out}, ${inDim}] weights); ${retrain}`);
    }
  });
  checkTrainedFor(
    { where, hiddenSize: m.hiddenSize, modelHash: m.modelHash, what: 'LookaheadKV modules', tool: 'train-lookaheadkv' },
    config,
    weights,
  );
}
