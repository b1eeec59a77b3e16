/**
 * Compressed contexts on disk (`.kvc`): a long document prefilled and compressed once, answered later by any
 * process that loads the same model, without prefilling it again.
 *
 * A safetensors file: `context_tokens` I32 [L] (the context's ids), `last_logits` F32 [vocab] (the context's
 * last position, from which an empty question decodes), and per layer l and KV head h `cache.l.h.positions`
 * I32 [n], `cache.l.h.keys` and `cache.l.h.values` [n, head_dim] (keys after RoPE, at their original
 * positions), F32 for an f32 cache and F16 (the cache's own halves) for an f16 one. String metadata: `format` ("kvevict-context-1"), `model_hash` (see model/hash.ts), `num_layers`,
 * `num_kv_heads`, `head_dim`, `next_position`, `press`, `press_options` (JSON), `budget` or `ratio`, `chat`
 * ("true" when the context opens a user turn of the chat template), `kv_dtype` ("f32" or "f16"), `full_cache_bytes`,
 * and `sha256` over the other metadata (sorted JSON) and the data area, so a file carried between machines
 * (a shared store) that changed on the way is refused rather than answered on. A file made for another
 * model, a truncated file or one whose parts disagree is refused in one line.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { HeadCache, KV_DTYPES, KvCache, type KvDtype } from '../cache/kv-cache.js';
import { KvevictError } from '../errors.js';
import { modelHash } from '../model/hash.js';
import type { LlamaModel } from '../model/llama.js';
import {
  readSafetensorsHeader,
  readTensorF32,
  readTensorHalfBits,
  readTensorI32,
  writeSafetensors,
  type TensorToWrite,
} from '../model/safetensors.js';
import { firstNonFinite } from '../model/weights.js';
import type { CompressedContext } from './pipeline.js';

export const CONTEXT_FORMAT = 'kvevict-context-1';

/** How a saved context was made: what `generate --context` needs to continue it as the original run would. */
export interface ContextOrigin {
  /** the context's token ids (BOS and the chat header included) */
  tokens: ArrayLike<number>;
  press: string;
  pressOptions: Record<string, unknown>;
  budget?: number;
  ratio?: number;
  /** the context opens a user turn of the chat template (the question then closes it) */
  chat: boolean;
}

export interface SavedContext {
  context: CompressedContext;
  origin: ContextOrigin & { tokens: Int32Array };
  /** every metadata entry of the file */
  metadata: Record<string, string>;
}

const part = (l: number, h: number, what: 'positions' | 'keys' | 'values') => `cache.${l}.${h}.${what}`;

/** Write a compressed context of `model` (atomically). Returns the file's size in bytes. */
export function saveCompressedContext(file: string, model: LlamaModel, ctx: CompressedContext, origin: ContextOrigin): number {
  const cfg = model.config;
  const d = cfg.headDim;
  const tensors: TensorToWrite[] = [
    { name: 'context_tokens', shape: [origin.tokens.length], data: Int32Array.from(origin.tokens) },
    { name: 'last_logits', shape: [ctx.lastLogits.length], data: ctx.lastLogits },
  ];
  ctx.cache.layers.forEach((layer, l) =>
    layer.forEach((head, h) => {
      const n = head.length;
      tensors.push({ name: part(l, h, 'positions'), shape: [n], data: head.positions.slice(0, n) });
      tensors.push({ name: part(l, h, 'keys'), shape: [n, d], data: head.keyData.subarray(0, n * d) });
      tensors.push({ name: part(l, h, 'values'), shape: [n, d], data: head.valueData.subarray(0, n * d) });
    }),
  );
  const metadata: Record<string, string> = {
    format: CONTEXT_FORMAT,
    model_hash: modelHash(cfg, model.weights),
    num_layers: String(cfg.numLayers),
    num_kv_heads: String(cfg.numKvHeads),
    head_dim: String(d),
    next_position: String(ctx.nextPosition),
    press: origin.press,
    press_options: JSON.stringify(origin.pressOptions),
    chat: String(origin.chat),
    kv_dtype: ctx.cache.dtype,
    full_cache_bytes: String(ctx.fullCacheBytes),
    ...(origin.budget !== undefined ? { budget: String(origin.budget) } : {}),
    ...(origin.ratio !== undefined ? { ratio: String(origin.ratio) } : {}),
  };
  const h = contentHash(metadata);
  for (const t of tensors) h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  writeSafetensors(file, tensors, { ...metadata, sha256: h.digest('hex') });
  return statSync(file).size;
}

/** Index of the first infinity or NaN among half bits (exponent all ones), or -1. */
function firstNonFiniteHalf(bits: Uint16Array): number {
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7c00) === 0x7c00) return i;
  return -1;
}

/** The digest's start: the metadata but its own sha256, as sorted JSON. */
function contentHash(metadata: Record<string, string>) {
  const fields = Object.keys(metadata)
    .filter((k) => k !== 'sha256')
    .sort()
    .map((k) => [k, metadata[k]]);
  return createHash('sha256').update(JSON.stringify(fields));
}

/** Read a compressed context for `model`; anything that does not fit it is refused naming the file and the part. */
export function loadCompressedContext(file: string, model: LlamaModel): SavedContext {
  const header = readSafetensorsHeader(file);
  const meta = header.metadata;
  const cfg = model.config;
  if (meta.format !== CONTEXT_FORMAT)
    throw new KvevictError(
      `${file}: not a compressed context (metadata "format" is ${JSON.stringify(meta.format)}, not "${CONTEXT_FORMAT}")`,
    );
  const bytes = readFileSync(file);
  const dataStart = 8 + Number(bytes.readBigUInt64LE(0));
  if (contentHash(meta).update(bytes.subarray(dataStart)).digest('hex') !== meta.sha256)
    throw new KvevictError(`${file}: the compressed context does not match its sha256 (changed or damaged since it was written)`);
  const mine = modelHash(cfg, model.weights);
  if (meta.model_hash !== mine)
    throw new KvevictError(
      `${file}: the context was compressed for another model (model_hash ${String(meta.model_hash).slice(0, 12)}..., this model is ${mine.slice(0, 12)}...)`,
    );
  for (const [k, want] of [
    ['num_layers', cfg.numLayers],
    ['num_kv_heads', cfg.numKvHeads],
    ['head_dim', cfg.headDim],
  ] as const)
    if (Number(meta[k]) !== want) throw new KvevictError(`${file}: metadata ${k} is ${JSON.stringify(meta[k])}, the model has ${want}`);
  if (!KV_DTYPES.includes(meta.kv_dtype as KvDtype))
    throw new KvevictError(`${file}: kv_dtype ${JSON.stringify(meta.kv_dtype)} is not supported (${KV_DTYPES.join(', ')})`);
  const dtype = meta.kv_dtype as KvDtype;
  const tensor = (name: string) => {
    const t = header.tensors.get(name);
    if (!t) throw new KvevictError(`${file}: no tensor "${name}" (a compressed context has one per layer and KV head)`);
    return t;
  };
  const tokens = readTensorI32(tensor('context_tokens'), file);
  const nextPosition = Number(meta.next_position);
  if (!Number.isInteger(nextPosition) || nextPosition < tokens.length || nextPosition >= cfg.maxPositions)
    throw new KvevictError(
      `${file}: metadata next_position ${JSON.stringify(meta.next_position)} does not fit ${tokens.length} context tokens and ${cfg.maxPositions} positions`,
    );
  for (const t of tokens)
    if (!(t >= 0 && t < cfg.vocabSize)) throw new KvevictError(`${file}: context token ${t} is outside the vocabulary (${cfg.vocabSize})`);
  const lastLogits = readTensorF32(tensor('last_logits'), file);
  if (lastLogits.length !== cfg.vocabSize)
    throw new KvevictError(`${file}: last_logits has ${lastLogits.length} values, the vocabulary ${cfg.vocabSize}`);
  const d = cfg.headDim;
  const cache = new KvCache(cfg.numLayers, cfg.numKvHeads, d, dtype);
  for (let l = 0; l < cfg.numLayers; l++)
    for (let h = 0; h < cfg.numKvHeads; h++) {
      const positions = readTensorI32(tensor(part(l, h, 'positions')), file);
      const n = positions.length;
      for (let i = 0; i < n; i++)
        if (!(positions[i] >= 0 && positions[i] < nextPosition && (i === 0 || positions[i] > positions[i - 1])))
          throw new KvevictError(
            `${file}: ${part(l, h, 'positions')} must rise from 0 to below next_position ${nextPosition} (entry ${i} is ${positions[i]})`,
          );
      const head = new HeadCache(d, n, dtype);
      for (const what of ['keys', 'values'] as const) {
        const info = tensor(part(l, h, what));
        if (info.dtype !== (dtype === 'f16' ? 'F16' : 'F32'))
          throw new KvevictError(`${file}: ${part(l, h, what)} is ${info.dtype}, but kv_dtype is ${dtype}`);
        const data = dtype === 'f16' ? readTensorHalfBits(info, file) : readTensorF32(info, file);
        if (data.length !== n * d)
          throw new KvevictError(`${file}: ${part(l, h, what)} has ${data.length} values for ${n} entries of ${d}`);
        const bad = data instanceof Uint16Array ? firstNonFiniteHalf(data) : firstNonFinite(data);
        if (bad >= 0) throw new KvevictError(`${file}: ${part(l, h, what)} holds a non-finite value at index ${bad}`);
        (what === 'keys' ? head.keyData : head.valueData).set(data);
      }
      head.positions.set(positions);
      head.length = n;
      cache.setHead(l, h, head);
    }
  let pressOptions: Record<string, unknown>;
  try {
    pressOptions = JSON.parse(meta.press_options ?? '{}') as Record<string, unknown>;
  } catch {
    throw new KvevictError(`${file}: metadata press_options is not JSON`);
  }
  const num = (k: string) => (meta[k] !== undefined ? Number(meta[k]) : undefined);
  const fullCacheBytes = Number(meta.full_cache_bytes ?? NaN);
  return {
    context: {
      cache,
      promptLength: tokens.length,
      nextPosition,
      lastLogits,
      plan: cache.layers.map((layer) => layer.map((h) => h.positions.slice(0, h.length))),
      fullCacheBytes,
      cacheBytes: cache.bytes,
      prefillMs: 0,
      selectMs: 0,
    },
    origin: {
      tokens,
      press: meta.press ?? 'unknown',
      pressOptions,
      budget: num('budget'),
      ratio: num('ratio'),
      chat: meta.chat === 'true',
    },
    metadata: { ...meta },
  };
}
