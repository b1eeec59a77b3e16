import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KvevictError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { readJson } from './config.js';
import { readSafetensorsHeader, writeSafetensors } from './safetensors.js';
import { halfTable } from '../util/half.js';
import { floatDtype, type DType, type TensorInfo, type TensorToWrite } from './safetensors.js';
import type { FloatWeights, LayerWeights, MatrixData, Weights } from './types.js';
import { kernels } from '../kernels/index.js';
import { packFloat32, packUint16 } from '../kernels/arena.js';
import type { Kernels } from '../kernels/types.js';
import { Bf16Matrix, QuantMatrix } from '../quant/formats.js';

/** One tensor the config calls for: its Hugging Face name, shape, and where it lives in `Weights`. */
export interface TensorSlot {
  name: string;
  shape: number[];
  get(w: Weights): MatrixData | null;
  set(w: Weights, data: MatrixData): void;
}

type LayerField = keyof LayerWeights;

/** The linear layers' weight matrices of a decoder layer. */
export type LinearName = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';
export const LINEAR_NAMES: readonly LinearName[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/** [out, in] of a linear layer's weight matrix (stored row-major, out rows of in). */
export function linearShape(cfg: ModelConfig, name: LinearName): [number, number] {
  const { hiddenSize: h, intermediateSize: inter, numHeads, numKvHeads, headDim: d } = cfg;
  switch (name) {
    case 'q':
      return [numHeads * d, h];
    case 'k':
    case 'v':
      return [numKvHeads * d, h];
    case 'o':
      return [h, numHeads * d];
    case 'gate':
    case 'up':
      return [inter, h];
    case 'down':
      return [h, inter];
  }
}

/** Every tensor a model with this config stores, in Hugging Face naming (lm_head only when untied). */
export function tensorSlots(cfg: ModelConfig): TensorSlot[] {
  const { hiddenSize: h, numHeads, numKvHeads, headDim: d, vocabSize: vocab } = cfg;
  const slots: TensorSlot[] = [
    {
      name: 'model.embed_tokens.weight',
      shape: [vocab, h],
      get: (w) => w.embed,
      set: (w, a) => {
        w.embed = a;
      },
    },
  ];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const add = (name: string, shape: number[], field: LayerField) => {
      slots.push({
        name: p + name,
        shape,
        get: (w) => w.layers[l][field],
        set: (w, a) => {
          (w.layers[l] as unknown as Record<LayerField, MatrixData>)[field] = a;
        },
      });
    };
    add('input_layernorm.weight', [h], 'inputNorm');
    add('self_attn.q_proj.weight', linearShape(cfg, 'q'), 'q');
    add('self_attn.k_proj.weight', linearShape(cfg, 'k'), 'k');
    add('self_attn.v_proj.weight', linearShape(cfg, 'v'), 'v');
    add('self_attn.o_proj.weight', linearShape(cfg, 'o'), 'o');
    if (cfg.attentionBias) {
      add('self_attn.q_proj.bias', [numHeads * d], 'qBias');
      add('self_attn.k_proj.bias', [numKvHeads * d], 'kBias');
      add('self_attn.v_proj.bias', [numKvHeads * d], 'vBias');
    }
    if (cfg.qkNorm) {
      add('self_attn.q_norm.weight', [d], 'qNorm');
      add('self_attn.k_norm.weight', [d], 'kNorm');
    }
    add('post_attention_layernorm.weight', [h], 'postNorm');
    add('mlp.gate_proj.weight', linearShape(cfg, 'gate'), 'gate');
    add('mlp.up_proj.weight', linearShape(cfg, 'up'), 'up');
    add('mlp.down_proj.weight', linearShape(cfg, 'down'), 'down');
  }
  slots.push({
    name: 'model.norm.weight',
    shape: [h],
    get: (w) => w.finalNorm,
    set: (w, a) => {
      w.finalNorm = a as Float32Array;
    },
  });
  if (!cfg.tieWordEmbeddings) {
    slots.push({
      name: 'lm_head.weight',
      shape: [vocab, h],
      get: (w) => w.lmHead,
      set: (w, a) => {
        w.lmHead = a;
      },
    });
  }
  return slots;
}

/** A Weights object with empty arrays, filled in by the loader. */
export function emptyWeights(cfg: ModelConfig): FloatWeights {
  const none = new Float32Array(0);
  const layers: LayerWeights<Float32Array>[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    layers.push({
      inputNorm: none,
      q: none,
      k: none,
      v: none,
      o: none,
      qBias: null,
      kBias: null,
      vBias: null,
      qNorm: null,
      kNorm: null,
      postNorm: none,
      gate: none,
      up: none,
      down: none,
    });
  }
  return { embed: none, layers, finalNorm: none, lmHead: none };
}

/**
 * Weights whose every array the config calls for is allocated (zeroed) and packed into few large allocations
 * (huge pages with the native kernels: see kernels/arena.ts), for a loader to fill. Tied models share embed and lmHead.
 */
export function allocateWeights(cfg: ModelConfig, k: Kernels = kernels(), only?: (slot: TensorSlot) => boolean): FloatWeights {
  const w = emptyWeights(cfg);
  const slots = tensorSlots(cfg).filter((s) => only === undefined || only(s));
  const arrays = packFloat32(
    slots.map((s) => s.shape.reduce((a, b) => a * b, 1)),
    k,
  );
  slots.forEach((slot, i) => slot.set(w, arrays[i]));
  if (cfg.tieWordEmbeddings) w.lmHead = w.embed;
  return w;
}

const floatCopies = new WeakMap<Uint16Array | QuantMatrix | Bf16Matrix, Float32Array>();

/**
 * A matrix's float32 values: the array itself, or a half, bf16 or quantized matrix widened (once; remembered while it
 * lives, so a caller that needs every matrix as float32, training for one, doubles the model's memory).
 */
export function floatMatrix(m: MatrixData, k: Kernels = kernels()): Float32Array {
  if (m instanceof Float32Array) return m;
  let f = floatCopies.get(m);
  if (!f) {
    f = new Float32Array(m.length);
    if (m instanceof Bf16Matrix) k.bf16ToFloat(m.bits, f, m.length);
    else if (m instanceof Uint16Array) k.halfToFloat(m, f, m.length);
    else k.dequantRows(m, 0, m.rows, f);
    floatCopies.set(m, f);
  }
  return f;
}

/** Weights with every matrix float32 (quantized ones dequantized): for training and the methods that read weights. */
export function floatWeights(w: Weights): FloatWeights {
  if (isFloatWeights(w)) return w;
  const layers = w.layers.map((l) => ({
    ...l,
    ...(Object.fromEntries(LINEAR_NAMES.map((n) => [n, floatMatrix(l[n])])) as Record<LinearName, Float32Array>),
  }));
  const embed = floatMatrix(w.embed);
  return { embed, layers, finalNorm: w.finalNorm, lmHead: w.lmHead === w.embed ? embed : floatMatrix(w.lmHead) };
}

/** Whether every matrix of `w` is float32. */
export function isFloatWeights(w: Weights): w is FloatWeights {
  return (
    w.embed instanceof Float32Array &&
    w.lmHead instanceof Float32Array &&
    w.layers.every((l) => LINEAR_NAMES.every((n) => l[n] instanceof Float32Array))
  );
}

/**
 * Little-endian F32/F16/BF16 bytes to float32 (F16 through a 65536-entry table: one lookup per value), into
 * `out` when given (its length must be the value count).
 */
export function decodeToF32(bytes: Uint8Array, dtype: DType, out?: Float32Array): Float32Array {
  const n = bytes.byteLength / (dtype === 'F32' ? 4 : 2);
  if (out === undefined) out = new Float32Array(n);
  else if (out.length !== n) throw new Error(`internal error: decoding ${n} values into an array of ${out.length}`);
  if (dtype === 'F32') {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
    return out;
  }
  const u16 = new Uint16Array(n);
  new Uint8Array(u16.buffer).set(bytes);
  if (dtype === 'BF16') {
    const u32 = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
    return out;
  }
  const t = halfTable();
  for (let i = 0; i < n; i++) out[i] = t[u16[i]];
  return out;
}

/** The safetensors files of a model folder: `model.safetensors`, or the shards named by `model.safetensors.index.json`. */
export function safetensorsFiles(dir: string): { files: string[]; weightMap: Map<string, string> | null } {
  const index = join(dir, 'model.safetensors.index.json');
  const single = join(dir, 'model.safetensors');
  if (existsSync(index)) {
    const raw = readJson(index);
    const wm = (raw as { weight_map?: unknown } | null)?.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm))
      throw new KvevictError(`${index}: invalid index: missing "weight_map" object`);
    const weightMap = new Map<string, string>();
    for (const [name, f] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof f !== 'string' || f.includes('/') || f.includes('\\'))
        throw new KvevictError(`${index}: invalid index: weight_map["${name}"] must be a file name, got ${JSON.stringify(f)}`);
      weightMap.set(name, join(dir, f));
    }
    const files = [...new Set(weightMap.values())];
    for (const f of files) if (!existsSync(f)) throw new KvevictError(`${f}: file not found (listed in ${index})`);
    return { files, weightMap };
  }
  if (existsSync(single)) return { files: [single], weightMap: null };
  throw new KvevictError(`${dir}: no model.safetensors or model.safetensors.index.json`);
}

/**
 * Load a model folder's safetensors weights, checking every tensor the config calls for (name and shape): as
 * float32, or with `keepBf16` the matrices a file stores as BF16 kept as their bits (Bf16Matrix, half the
 * memory; products widen them exactly). When embeddings are tied, `lmHead` is the same array as `embed`.
 */
export function loadWeights(dir: string, cfg: ModelConfig): FloatWeights;
export function loadWeights(dir: string, cfg: ModelConfig, opts: { keepBf16: boolean }): Weights;
export function loadWeights(dir: string, cfg: ModelConfig, opts: { keepBf16: boolean } = { keepBf16: false }): Weights {
  const { files, weightMap } = safetensorsFiles(dir);
  // where each tensor is: name -> (file, info)
  const where = new Map<string, { file: string; info: TensorInfo }>();
  for (const file of files) {
    const header = readSafetensorsHeader(file);
    for (const [name, info] of header.tensors) {
      if (weightMap && weightMap.get(name) !== file) continue; // the index decides which copy counts
      where.set(name, { file, info });
    }
  }
  const storedAs = (slot: TensorSlot) => where.get(slot.name)?.info.dtype;
  const kept = (slot: TensorSlot) => opts.keepBf16 && slot.shape.length === 2 && (storedAs(slot) === 'BF16' || storedAs(slot) === 'F16');
  const slotsKept = tensorSlots(cfg).filter((s) => kept(s));
  const w: Weights = allocateWeights(cfg, kernels(), (s) => !kept(s));
  const bits = packUint16(
    slotsKept.map((s) => s.shape[0] * s.shape[1]),
    kernels(),
  );
  slotsKept.forEach((s, i) => s.set(w, storedAs(s) === 'BF16' ? new Bf16Matrix(bits[i], s.shape[0], s.shape[1]) : bits[i]));
  const fds = new Map<string, number>();
  try {
    for (const slot of tensorSlots(cfg)) {
      const at = where.get(slot.name);
      if (!at) {
        const inFile = weightMap?.get(slot.name) ?? (files.length === 1 ? files[0] : join(dir, 'model.safetensors.index.json'));
        throw new KvevictError(`${inFile}: missing tensor ${slot.name}`);
      }
      const { file, info } = at;
      if (info.shape.length !== slot.shape.length || info.shape.some((s, i) => s !== slot.shape[i])) {
        throw new KvevictError(
          `${file}: tensor ${slot.name} has shape [${info.shape.join(', ')}], config.json implies [${slot.shape.join(', ')}]`,
        );
      }
      let fd = fds.get(file);
      if (fd === undefined) {
        fd = openSync(file, 'r');
        fds.set(file, fd);
      }
      const bytes = Buffer.allocUnsafe(info.end - info.begin);
      const got = readSync(fd, bytes, 0, bytes.length, info.begin);
      if (got !== bytes.length) throw new KvevictError(`${file}: truncated while reading tensor ${slot.name}`);
      const target = slot.get(w);
      if (target instanceof Uint16Array) {
        new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(bytes);
        const bad = target.findIndex((h) => (h & 0x7c00) === 0x7c00);
        if (bad >= 0)
          throw new KvevictError(`${file}: tensor ${slot.name} holds a non-finite value at index ${bad}: weights must be finite`);
        continue;
      }
      if (target instanceof Bf16Matrix) {
        new Uint8Array(target.bits.buffer, target.bits.byteOffset, target.bits.byteLength).set(bytes);
        const bad = firstNonFiniteBf16(target.bits);
        if (bad >= 0)
          throw new KvevictError(`${file}: tensor ${slot.name} holds a non-finite value at index ${bad}: weights must be finite`);
        continue;
      }
      const data = decodeToF32(bytes, floatDtype(info, file), target as Float32Array); // allocateWeights gave every other slot its array
      const bad = firstNonFinite(data);
      if (bad >= 0) throw new KvevictError(`${file}: tensor ${slot.name} holds ${data[bad]} at index ${bad}: weights must be finite`);
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  checkUnused(dir, cfg, [...where.keys()], new Set(tensorSlots(cfg).map((t) => t.name)));
  if (cfg.tieWordEmbeddings) w.lmHead = w.embed;
  return w;
}

/** Index of the first NaN or infinity among bfloat16 bits (exponent all ones), or -1. */
export function firstNonFiniteBf16(a: Uint16Array): number {
  for (let i = 0; i < a.length; i++) if ((a[i] & 0x7f80) === 0x7f80) return i;
  return -1;
}

/** Index of the first NaN or infinity, or -1 (a plain loop: 0.18-0.34 s for SmolLM2-135M's 134.5M values). */
export function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (x - x !== 0) return i;
  }
  return -1;
}

/**
 * Tensors the config does not call for: layers past num_hidden_layers are an error (the config would
 * silently drop them); others get one warning line.
 */
function checkUnused(dir: string, cfg: ModelConfig, names: string[], used: Set<string>): void {
  const unused = names.filter(
    (n) => !used.has(n) && !(cfg.tieWordEmbeddings && n === 'lm_head.weight') && !/rotary_emb\.inv_freq$/.test(n),
  );
  let maxLayer = -1;
  for (const n of names) {
    const m = /^model\.layers\.(\d+)\./.exec(n);
    if (m) maxLayer = Math.max(maxLayer, Number(m[1]));
  }
  if (maxLayer + 1 !== cfg.numLayers) {
    throw new KvevictError(
      `${join(dir, 'config.json')}: num_hidden_layers is ${cfg.numLayers} but the weights hold ${maxLayer + 1} layers`,
    );
  }
  if (unused.length > 0) {
    process.stderr.write(
      `kvevict: ${dir}: ${unused.length} tensor(s) not used by the model (${unused.slice(0, 3).join(', ')}${unused.length > 3 ? ', ...' : ''})\n`,
    );
  }
}

/** The tensors of `weights` with Hugging Face names and shapes, ready for writeSafetensors. */
export function weightsToTensors(cfg: ModelConfig, weights: Weights, dtype: DType = 'F32'): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  for (const slot of tensorSlots(cfg)) {
    const m = slot.get(weights);
    const data = m === null ? null : floatMatrix(m);
    const count = slot.shape.reduce((a, b) => a * b, 1);
    if (!data || data.length !== count)
      throw new Error(`internal error: weights for ${slot.name} have ${data?.length ?? 0} values, shape [${slot.shape}] needs ${count}`);
    out.push({ name: slot.name, shape: slot.shape, data, dtype });
  }
  return out;
}

export interface SaveModelOptions {
  /** stored dtype (default F32) */
  dtype?: DType;
  /** number of safetensors shards (default 1: a single model.safetensors) */
  shards?: number;
  /** folder whose tokenizer.json / tokenizer_config.json are copied in */
  tokenizerFrom?: string;
  /** tokenizer files given as objects, written as JSON (take precedence over tokenizerFrom) */
  tokenizerJson?: object;
  tokenizerConfigJson?: object;
}

function shardName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

/**
 * Write a Hugging Face model folder: config.json (the raw object given), the weights (single file or
 * `shards` files with model.safetensors.index.json), and optionally the tokenizer files.
 */
export function saveModelDir(dir: string, rawConfig: object, cfg: ModelConfig, weights: Weights, opts: SaveModelOptions = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(rawConfig, null, 2) + '\n');
  const tensors = weightsToTensors(cfg, weights, opts.dtype ?? 'F32');
  const shards = Math.max(1, Math.min(opts.shards ?? 1, tensors.length));
  if (shards === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  } else {
    // contiguous groups of roughly equal size
    const total = tensors.reduce((a, t) => a + t.data.length, 0);
    const groups: TensorToWrite[][] = Array.from({ length: shards }, () => []);
    let acc = 0;
    for (const t of tensors) {
      const g = Math.min(shards - 1, Math.floor((acc / total) * shards));
      groups[g].push(t);
      acc += t.data.length;
    }
    for (let g = 0; g < shards; g++) if (groups[g].length === 0) groups[g].push(...groups[g - 1].splice(-1)); // never an empty shard
    const weightMap: Record<string, string> = {};
    const bytesPer = (opts.dtype ?? 'F32') === 'F32' ? 4 : 2;
    groups.forEach((group, g) => {
      const name = shardName(g, shards);
      writeSafetensors(join(dir, name), group, { format: 'pt' });
      for (const t of group) weightMap[t.name] = name;
    });
    const index = { metadata: { total_size: total * bytesPer }, weight_map: weightMap };
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2) + '\n');
  }
  if (opts.tokenizerJson) writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(opts.tokenizerJson));
  else if (opts.tokenizerFrom) copyFileSync(join(opts.tokenizerFrom, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  if (opts.tokenizerConfigJson) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(opts.tokenizerConfigJson, null, 2) + '\n');
  else if (opts.tokenizerFrom) copyFileSync(join(opts.tokenizerFrom, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
}
