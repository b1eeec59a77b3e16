/**
 * GGUF v3 (llama.cpp's model format): a writer for models loaded here, with llama.cpp's tensor names,
 * metadata keys and the Q/K row permutation its "llama" architecture expects; and a reader (round trips,
 * and loading GGUF F32/F16/BF16 models back into Weights).
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { KvevictError } from '../errors.js';
import { ropeInvFreq } from './config.js';
import type { ModelConfig, ModelType } from './config.js';
import { encodeHalf } from './safetensors.js';
import { allocateWeights, decodeToF32, emptyWeights, firstNonFiniteBf16, floatMatrix, linearShape, type LinearName } from './weights.js';
import { kernels } from '../kernels/index.js';
import type { Tokenizer } from './tokenizer.js';
import { Tokenizer as KvTokenizer, bpeModelJson, spmTokenizer } from './tokenizer.js';
import { printable } from './safetensors.js';
import type { MatrixData, Weights } from './types.js';
import {
  Bf16Matrix,
  QUANT_TYPES,
  QuantMatrix,
  quantFormat as quantFormatOfType,
  quantFormatOfGgml,
  type QuantFormat,
  type QuantType,
} from '../quant/formats.js';
import { quantizeMatrix } from '../quant/quantize.js';
import type { SpmVocab } from './spm.js';

/** GGUF metadata value types. */
export enum GgufType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml tensor types this module reads and writes (the block formats: src/quant/formats.ts). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
}

/** ggml's names of its tensor types, for messages about the ones not read here. */
const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  6: 'Q5_0',
  7: 'Q5_1',
  8: 'Q8_0',
  9: 'Q8_1',
  10: 'Q2_K',
  11: 'Q3_K',
  12: 'Q4_K',
  13: 'Q5_K',
  14: 'Q6_K',
  15: 'Q8_K',
  16: 'IQ2_XXS',
  17: 'IQ2_XS',
  18: 'IQ3_XXS',
  19: 'IQ1_S',
  20: 'IQ4_NL',
  21: 'IQ3_S',
  22: 'IQ2_S',
  23: 'IQ4_XS',
  24: 'I8',
  25: 'I16',
  26: 'I32',
  27: 'I64',
  28: 'F64',
  29: 'IQ1_M',
  30: 'BF16',
  34: 'TQ1_0',
  35: 'TQ2_0',
  39: 'MXFP4',
};

/** A ggml type's name ("Q4_K (12)"). */
export function ggmlTypeName(type: number): string {
  return `${GGML_TYPE_NAMES[type] ?? 'unknown'} (${type})`;
}

/** The block format of a ggml type id, when it is one kvevict reads. */
function blockFormat(type: GgmlType): QuantFormat | undefined {
  return quantFormatOfGgml(type);
}

/** llama.cpp token types (tokenizer.ggml.token_type). */
export enum GgufTokenType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufScalar[];

/** A metadata entry: its value and GGUF type (and element type for arrays). */
export interface GgufKv {
  type: GgufType;
  value: GgufValue;
  arrayType?: GgufType;
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the fastest-varying (columns); the reverse of a numpy/safetensors shape */
  dims: number[];
  type: GgmlType;
  /** offset from the start of the data section */
  offset: number;
}

export interface GgufFile {
  file: string;
  version: number;
  metadata: Map<string, GgufKv>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** absolute byte offset of the data section */
  dataOffset: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const DEFAULT_ALIGNMENT = 32;

// ---------------------------------------------------------------- permutation

/**
 * llama.cpp's "llama" architecture applies RoPE to interleaved pairs (x[2i], x[2i+1]); Hugging Face's
 * rotate_half pairs x[i] with x[i + d/2]. convert_hf_to_gguf.py's permute(w, n_head, n_head_kv) reorders the
 * rows of q_proj/k_proj inside each head so the two agree: new row 2j+i <- old row i*d/2 + j.
 * `rows` = heads * headDim; `cols` = 1 for a bias.
 */
export function permuteQK(w: Float32Array, heads: number, cols: number): Float32Array {
  return permuteRows(w, heads, cols, false);
}

/** The inverse of permuteQK. */
export function unpermuteQK(w: Float32Array, heads: number, cols: number): Float32Array {
  return permuteRows(w, heads, cols, true);
}

function permuteRows(w: Float32Array, heads: number, cols: number, inverse: boolean): Float32Array {
  const rows = w.length / cols;
  const d = rows / heads;
  const half = d / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < half; j++) {
        const hf = h * d + i * half + j; // rotate_half layout
        const gg = h * d + 2 * j + i; // interleaved layout
        const [src, dst] = inverse ? [gg, hf] : [hf, gg];
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- writing

class ByteSink {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u8(v: number): void {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    this.push(b);
  }
  i8(v: number): void {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    this.push(b);
  }
  u16(v: number): void {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    this.push(b);
  }
  i16(v: number): void {
    const b = Buffer.alloc(2);
    b.writeInt16LE(v);
    this.push(b);
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  f64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  i64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function writeScalar(sink: ByteSink, type: GgufType, v: GgufScalar, key: string): void {
  const n = () => {
    if (typeof v !== 'number') throw new Error(`internal error: GGUF ${key}: expected a number, got ${typeof v}`);
    return v;
  };
  switch (type) {
    case GgufType.UINT8:
      sink.u8(n());
      break;
    case GgufType.INT8:
      sink.i8(n());
      break;
    case GgufType.UINT16:
      sink.u16(n());
      break;
    case GgufType.INT16:
      sink.i16(n());
      break;
    case GgufType.UINT32:
      sink.u32(n());
      break;
    case GgufType.INT32:
      sink.i32(n());
      break;
    case GgufType.FLOAT32:
      sink.f32(n());
      break;
    case GgufType.FLOAT64:
      sink.f64(n());
      break;
    case GgufType.UINT64:
      sink.u64(typeof v === 'bigint' ? v : n());
      break;
    case GgufType.INT64:
      sink.i64(typeof v === 'bigint' ? v : n());
      break;
    case GgufType.BOOL:
      sink.u8(v ? 1 : 0);
      break;
    case GgufType.STRING:
      if (typeof v !== 'string') throw new Error(`internal error: GGUF ${key}: expected a string`);
      sink.str(v);
      break;
    default:
      throw new Error(`internal error: GGUF ${key}: cannot write type ${type}`);
  }
}

function writeKv(sink: ByteSink, key: string, kv: GgufKv): void {
  sink.str(key);
  sink.u32(kv.type);
  if (kv.type === GgufType.ARRAY) {
    const arr = kv.value as GgufScalar[];
    if (kv.arrayType === undefined) throw new Error(`internal error: GGUF ${key}: array without element type`);
    sink.u32(kv.arrayType);
    sink.u64(arr.length);
    for (const v of arr) writeScalar(sink, kv.arrayType, v, key);
  } else {
    writeScalar(sink, kv.type, kv.value as GgufScalar, key);
  }
}

const u32 = (value: number): GgufKv => ({ type: GgufType.UINT32, value });
const f32 = (value: number): GgufKv => ({ type: GgufType.FLOAT32, value });
const str = (value: string): GgufKv => ({ type: GgufType.STRING, value });
const bool = (value: boolean): GgufKv => ({ type: GgufType.BOOL, value });
const strArr = (value: string[]): GgufKv => ({ type: GgufType.ARRAY, arrayType: GgufType.STRING, value });
const i32Arr = (value: number[]): GgufKv => ({ type: GgufType.ARRAY, arrayType: GgufType.INT32, value });

/** llama.cpp architecture name of a model type: Mistral runs as "llama". */
export function ggufArchitecture(t: ModelType): 'llama' | 'qwen2' | 'qwen3' {
  return t === 'llama' || t === 'mistral' ? 'llama' : t;
}

export interface GgufTensorToWrite {
  name: string;
  /** numpy-order shape, e.g. [out, in] */
  shape: number[];
  /** float32 values (F32, F16, BF16), or a block type's encoded bytes */
  data: Float32Array | Uint8Array;
  type: GgmlType;
}

function bytesToWrite(t: GgufTensorToWrite): number {
  if (t.data instanceof Uint8Array) return t.data.length;
  return t.data.length * (t.type === GgmlType.F32 ? 4 : 2);
}

/** Write a GGUF v3 file from metadata and tensors (atomically: temporary file renamed into place). */
export function writeGgufFile(
  file: string,
  metadata: Map<string, GgufKv>,
  tensors: GgufTensorToWrite[],
  alignment = DEFAULT_ALIGNMENT,
): void {
  const head = new ByteSink();
  head.u32(GGUF_MAGIC);
  head.u32(3);
  head.u64(tensors.length);
  head.u64(metadata.size);
  for (const [k, kv] of metadata) writeKv(head, k, kv);
  const align = (n: number) => Math.ceil(n / alignment) * alignment;
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    head.str(t.name);
    head.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) head.u64(d);
    head.u32(t.type);
    head.u64(offset);
    offsets.push(offset);
    offset = align(offset + bytesToWrite(t));
  }
  const headBytes = head.bytes();
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, headBytes);
    let pos = headBytes.length;
    const pad = (to: number) => {
      if (to > pos) writeSync(fd, Buffer.alloc(to - pos));
      pos = to;
    };
    const dataStart = align(pos);
    pad(dataStart);
    tensors.forEach((t, i) => {
      pad(dataStart + offsets[i]);
      let blob: Uint8Array;
      if (t.data instanceof Uint8Array) blob = t.data;
      else if (t.type === GgmlType.F32) blob = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      else {
        const h = encodeHalf(t.data, t.type === GgmlType.F16 ? 'F16' : 'BF16');
        blob = new Uint8Array(h.buffer);
      }
      writeSync(fd, blob);
      pos += blob.length;
    });
    pad(align(pos));
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true }); // nothing half-written is left behind
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/**
 * How a written file stores its matrices: one float type, one block type, or llama.cpp's Q4_K_M mix (Q4_K, with
 * Q6_K for the output matrix and for attn_v and ffn_down in the layers llama.cpp's use_more_bits picks).
 */
export type GgufDtype = 'f32' | 'f16' | 'bf16' | QuantType | 'q4_k_m';
export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'bf16', ...QUANT_TYPES, 'q4_k_m'];

export interface WriteGgufOptions {
  /** dtype of the matrices; 1-D tensors (norms, biases) stay F32 (default f32) */
  dtype?: GgufDtype;
  /** tokenizer.ggml.pre; default chosen from the tokenizer's pre-tokenizer ("smollm", "gpt-2" or "default") */
  pre?: string;
  /** general.name (default "kvevict") */
  name?: string;
}

/** The tokenizer.ggml.pre that matches a tokenizer.json pre-tokenizer, as llama.cpp's converter would name it. */
export function guessPreTokenizer(tokenizerJson: Record<string, unknown>): string {
  const pt = tokenizerJson.pre_tokenizer as Record<string, unknown> | null | undefined;
  const model = tokenizerJson.model as Record<string, unknown> | undefined;
  const merges = model?.merges;
  if (Array.isArray(merges) && merges.length === 0) return 'default'; // byte tokenizer: any split gives the same ids
  if (pt?.type === 'Sequence' && Array.isArray(pt.pretokenizers)) {
    const p = pt.pretokenizers as Record<string, unknown>[];
    if (
      p.length === 2 &&
      p[0].type === 'Digits' &&
      p[0].individual_digits === true &&
      p[1].type === 'ByteLevel' &&
      p[1].use_regex !== false
    )
      return 'smollm';
  }
  if (pt?.type === 'ByteLevel' && pt.use_regex !== false) return 'gpt-2';
  return 'default';
}

/** The tokenizer as GGUF "gpt2" (byte-level BPE) metadata, padded with [PADn] tokens up to the model's vocab. */
function tokenizerMetadata(md: Map<string, GgufKv>, cfg: ModelConfig, tok: Tokenizer, pre: string | undefined): void {
  if (tok.spmVocab) return spmMetadata(md, cfg, tok, tok.spmVocab);
  const model = tok.tokenizerJson.model as Record<string, unknown> | undefined;
  if (model?.type !== 'BPE')
    throw new KvevictError(`tokenizer.json: GGUF export supports byte-level BPE tokenizers, this one is ${String(model?.type)}`);
  if (tok.vocabSize > cfg.vocabSize)
    throw new KvevictError(`tokenizer.json: ${tok.vocabSize} tokens but config.json vocab_size is ${cfg.vocabSize}`);
  const tokens: string[] = [];
  const types: number[] = [];
  const added = new Map<number, boolean>();
  for (const t of (tok.tokenizerJson.added_tokens as { id: number; special?: boolean }[] | undefined) ?? [])
    added.set(t.id, t.special === true);
  for (let id = 0; id < cfg.vocabSize; id++) {
    let s: string | null = null;
    if (id < tok.vocabSize) {
      try {
        s = tok.tokenToString(id);
      } catch {
        s = null;
      }
    }
    if (s === null || s === undefined) {
      tokens.push(`[PAD${id}]`);
      types.push(GgufTokenType.UNUSED);
    } else {
      tokens.push(s);
      types.push(added.has(id) ? (added.get(id) ? GgufTokenType.CONTROL : GgufTokenType.USER_DEFINED) : GgufTokenType.NORMAL);
    }
  }
  const rawMerges = (model.merges as (string | [string, string])[] | undefined) ?? [];
  const merges = rawMerges.map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  md.set('tokenizer.ggml.model', str('gpt2'));
  md.set('tokenizer.ggml.pre', str(pre ?? guessPreTokenizer(tok.tokenizerJson)));
  md.set('tokenizer.ggml.tokens', strArr(tokens));
  md.set('tokenizer.ggml.token_type', i32Arr(types));
  md.set('tokenizer.ggml.merges', strArr(merges));
  const bos = tok.bosTokenId ?? cfg.bosTokenId;
  const eos = tok.eosTokenId ?? cfg.eosTokenIds[0] ?? null;
  if (bos !== null) md.set('tokenizer.ggml.bos_token_id', u32(bos));
  if (eos !== null) md.set('tokenizer.ggml.eos_token_id', u32(eos));
  if (tok.unkTokenId !== null) md.set('tokenizer.ggml.unknown_token_id', u32(tok.unkTokenId));
  if (tok.padTokenId !== null) md.set('tokenizer.ggml.padding_token_id', u32(tok.padTokenId));
  // prompts are tokenized as given: no implicit BOS/EOS
  md.set('tokenizer.ggml.add_bos_token', bool(false));
  md.set('tokenizer.ggml.add_eos_token', bool(false));
  if (tok.chatTemplate !== null) md.set('tokenizer.chat_template', str(tok.chatTemplate));
}

/** A SentencePiece vocabulary (read from a GGUF "llama" tokenizer) written back as it came. */
function spmMetadata(md: Map<string, GgufKv>, cfg: ModelConfig, tok: Tokenizer, v: SpmVocab): void {
  if (v.tokens.length !== cfg.vocabSize)
    throw new KvevictError(`${v.source}: ${v.tokens.length} tokens but the model's vocabulary is ${cfg.vocabSize}`);
  md.set('tokenizer.ggml.model', str('llama'));
  md.set('tokenizer.ggml.tokens', strArr(v.tokens));
  md.set('tokenizer.ggml.scores', { type: GgufType.ARRAY, arrayType: GgufType.FLOAT32, value: v.scores });
  md.set('tokenizer.ggml.token_type', i32Arr(v.types));
  md.set('tokenizer.ggml.add_space_prefix', bool(v.addSpacePrefix));
  const bos = tok.bosTokenId ?? cfg.bosTokenId;
  const eos = tok.eosTokenId ?? cfg.eosTokenIds[0] ?? null;
  if (bos !== null) md.set('tokenizer.ggml.bos_token_id', u32(bos));
  if (eos !== null) md.set('tokenizer.ggml.eos_token_id', u32(eos));
  if (v.unkId !== null) md.set('tokenizer.ggml.unknown_token_id', u32(v.unkId));
  if (tok.padTokenId !== null) md.set('tokenizer.ggml.padding_token_id', u32(tok.padTokenId));
  md.set('tokenizer.ggml.add_bos_token', bool(tok.addBosToken));
  md.set('tokenizer.ggml.add_eos_token', bool(tok.addEosToken));
  if (tok.chatTemplate !== null) md.set('tokenizer.chat_template', str(tok.chatTemplate));
}

/** Llama-3 rope scaling as llama.cpp stores it: per-frequency divisors in a "rope_freqs.weight" tensor. */
export function llama3RopeFactors(cfg: ModelConfig): Float32Array {
  const scaled = ropeInvFreq(cfg);
  const plain = ropeInvFreq({ ...cfg, ropeScaling: null });
  const out = new Float32Array(scaled.length);
  for (let i = 0; i < out.length; i++) out[i] = plain[i] / scaled[i];
  return out;
}

/** The metadata and tensors of a model in llama.cpp's layout. */
export function ggufContent(
  cfg: ModelConfig,
  weights: Weights,
  tokenizer: Tokenizer,
  opts: WriteGgufOptions = {},
): { metadata: Map<string, GgufKv>; tensors: GgufTensorToWrite[] } {
  const arch = ggufArchitecture(cfg.modelType);
  const dtype = opts.dtype ?? 'f32';
  if (!GGUF_DTYPES.includes(dtype)) throw new KvevictError(`GGUF dtype must be one of ${GGUF_DTYPES.join(', ')}, got "${String(dtype)}"`);
  const md = new Map<string, GgufKv>();
  md.set('general.architecture', str(arch));
  md.set('general.name', str(opts.name ?? 'kvevict'));
  md.set('general.file_type', u32(LLAMA_FILE_TYPE[dtype]));
  md.set('general.quantization_version', u32(2));
  md.set('general.alignment', u32(DEFAULT_ALIGNMENT));
  md.set(`${arch}.vocab_size`, u32(cfg.vocabSize));
  md.set(`${arch}.context_length`, u32(cfg.maxPositions));
  md.set(`${arch}.embedding_length`, u32(cfg.hiddenSize));
  md.set(`${arch}.block_count`, u32(cfg.numLayers));
  md.set(`${arch}.feed_forward_length`, u32(cfg.intermediateSize));
  md.set(`${arch}.attention.head_count`, u32(cfg.numHeads));
  md.set(`${arch}.attention.head_count_kv`, u32(cfg.numKvHeads));
  if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize || arch === 'qwen3') {
    md.set(`${arch}.attention.key_length`, u32(cfg.headDim));
    md.set(`${arch}.attention.value_length`, u32(cfg.headDim));
  }
  md.set(`${arch}.rope.freq_base`, f32(cfg.ropeTheta));
  md.set(`${arch}.rope.dimension_count`, u32(cfg.headDim));
  md.set(`${arch}.attention.layer_norm_rms_epsilon`, f32(cfg.rmsNormEps));
  tokenizerMetadata(md, cfg, tokenizer, opts.pre);

  const tensors: GgufTensorToWrite[] = [];
  const n = cfg.numLayers;
  const mat = (name: string, shape: number[], data: MatrixData, role: MatrixRole = 'other', qkHeads = 0) => {
    let f = floatMatrix(data);
    if (qkHeads > 0 && arch === 'llama') f = permuteQK(f, qkHeads, shape[1]);
    const type = matrixType(dtype, role, Number(/^blk\.(\d+)\./.exec(name)?.[1] ?? 0), n, shape[1]);
    const block = blockFormat(type);
    tensors.push({ name, shape, data: block ? quantizeMatrix(block.type, f, shape[0], shape[1]).data : f, type });
  };
  const vec = (name: string, data: Float32Array) => tensors.push({ name, shape: [data.length], data, type: GgmlType.F32 });
  const { hiddenSize: h, numHeads: H, numKvHeads: Hkv, vocabSize: vocab } = cfg;
  const permute = arch === 'llama';
  mat('token_embd.weight', [vocab, h], weights.embed, cfg.tieWordEmbeddings ? 'output' : 'other');
  if (cfg.ropeScaling && arch === 'llama') vec('rope_freqs.weight', llama3RopeFactors(cfg));
  else if (cfg.ropeFreqFactors && arch === 'llama') vec('rope_freqs.weight', Float32Array.from(cfg.ropeFreqFactors));
  weights.layers.forEach((L, l) => {
    const p = `blk.${l}.`;
    vec(p + 'attn_norm.weight', L.inputNorm);
    mat(p + 'attn_q.weight', linearShape(cfg, 'q'), L.q, 'other', H);
    mat(p + 'attn_k.weight', linearShape(cfg, 'k'), L.k, 'other', Hkv);
    mat(p + 'attn_v.weight', linearShape(cfg, 'v'), L.v, 'attn_v');
    mat(p + 'attn_output.weight', linearShape(cfg, 'o'), L.o);
    if (L.qBias) vec(p + 'attn_q.bias', permute ? permuteQK(L.qBias, H, 1) : L.qBias);
    if (L.kBias) vec(p + 'attn_k.bias', permute ? permuteQK(L.kBias, Hkv, 1) : L.kBias);
    if (L.vBias) vec(p + 'attn_v.bias', L.vBias);
    if (L.qNorm) vec(p + 'attn_q_norm.weight', L.qNorm);
    if (L.kNorm) vec(p + 'attn_k_norm.weight', L.kNorm);
    vec(p + 'ffn_norm.weight', L.postNorm);
    mat(p + 'ffn_gate.weight', linearShape(cfg, 'gate'), L.gate);
    mat(p + 'ffn_up.weight', linearShape(cfg, 'up'), L.up);
    mat(p + 'ffn_down.weight', linearShape(cfg, 'down'), L.down, 'ffn_down');
  });
  vec('output_norm.weight', weights.finalNorm);
  if (!cfg.tieWordEmbeddings && weights.lmHead !== weights.embed) mat('output.weight', [vocab, h], weights.lmHead, 'output');
  return { metadata: md, tensors };
}

/** llama.cpp's general.file_type (llama_ftype) of each dtype; a single K type is named after its _S mix. */
const LLAMA_FILE_TYPE: Record<GgufDtype, number> = {
  f32: 0,
  f16: 1,
  q4_0: 2,
  q4_1: 3,
  q8_0: 7,
  q5_0: 8,
  q5_1: 9,
  q4_k: 14,
  q4_k_m: 15,
  q5_k: 16,
  q6_k: 18,
  bf16: 32,
};

/** What a matrix is to llama.cpp's choice of types: the output matrix (or tied embedding), attn_v, ffn_down, or any other. */
type MatrixRole = 'output' | 'attn_v' | 'ffn_down' | 'other';

const GGML_OF: Record<GgufDtype, GgmlType> = {
  f32: GgmlType.F32,
  f16: GgmlType.F16,
  bf16: GgmlType.BF16,
  q4_0: GgmlType.Q4_0,
  q4_1: GgmlType.Q4_1,
  q5_0: GgmlType.Q5_0,
  q5_1: GgmlType.Q5_1,
  q8_0: GgmlType.Q8_0,
  q4_k: GgmlType.Q4_K,
  q5_k: GgmlType.Q5_K,
  q6_k: GgmlType.Q6_K,
  q4_k_m: GgmlType.Q4_K,
};

/**
 * The ggml type llama-quantize gives a matrix (llama_tensor_get_type without an importance matrix): a quantized
 * file's output matrix is Q6_K (Q8_0 files keep Q8_0); Q4_K_M's attn_v and ffn_down are Q6_K in the first and
 * last eighth of the layers and every third between; a row length that is not whole blocks falls back as
 * llama.cpp's tensor_type_fallback does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16).
 */
export function matrixType(dtype: GgufDtype, role: MatrixRole, layer: number, layers: number, cols: number): GgmlType {
  let type = GGML_OF[dtype];
  if (!blockFormat(type)) return type;
  // llama.cpp's use_more_bits, in its integer arithmetic
  const eighth = Math.floor(layers / 8);
  const moreBits = layer < eighth || layer >= Math.floor((7 * layers) / 8) || (layer - eighth) % 3 === 2;
  if (role === 'output') type = cols % 256 !== 0 ? GgmlType.Q8_0 : type === GgmlType.Q8_0 ? type : GgmlType.Q6_K;
  else if (dtype === 'q4_k_m' && (role === 'attn_v' || role === 'ffn_down') && moreBits) type = GgmlType.Q6_K;
  if (cols % blockFormat(type)!.blockSize !== 0) {
    const fallback: Partial<Record<GgmlType, GgmlType>> = {
      [GgmlType.Q4_K]: GgmlType.Q5_0,
      [GgmlType.Q5_K]: GgmlType.Q5_1,
      [GgmlType.Q6_K]: GgmlType.Q8_0,
    };
    type = fallback[type] ?? type;
    if (cols % blockFormat(type)!.blockSize !== 0) type = GgmlType.F16;
  }
  return type;
}

/** Write a model as a GGUF v3 file llama.cpp loads. */
export function writeGguf(file: string, cfg: ModelConfig, weights: Weights, tokenizer: Tokenizer, opts: WriteGgufOptions = {}): void {
  const { metadata, tensors } = ggufContent(cfg, weights, tokenizer, opts);
  writeGgufFile(file, metadata, tensors);
}

// ---------------------------------------------------------------- reading

class ByteSource {
  pos = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
    readonly file: string,
  ) {}
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  /** `n` bytes at the cursor, reading ahead in 1 MiB blocks */
  take(n: number, what: string): Buffer {
    if (this.pos + n > this.size)
      throw new KvevictError(`${this.file}: truncated GGUF file while reading ${what} (needs byte ${this.pos + n}, file has ${this.size})`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
      this.buf = Buffer.alloc(len);
      readSync(this.fd, this.buf, 0, len, this.pos);
      this.bufStart = this.pos;
    }
    const off = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(off, off + n);
  }
  u32(what: string): number {
    return this.take(4, what).readUInt32LE(0);
  }
  u64(what: string): number {
    const v = this.take(8, what).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new KvevictError(`${this.file}: ${what} ${v} is too large`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.u64(`${what} length`);
    if (n > this.size - this.pos)
      throw new KvevictError(`${this.file}: truncated or corrupt: ${what} claims ${n} bytes, and ${this.size - this.pos} remain`);
    return this.take(n, what).toString('utf8');
  }
}

function readScalar(src: ByteSource, type: GgufType, what: string): GgufScalar {
  switch (type) {
    case GgufType.UINT8:
      return src.take(1, what).readUInt8(0);
    case GgufType.INT8:
      return src.take(1, what).readInt8(0);
    case GgufType.UINT16:
      return src.take(2, what).readUInt16LE(0);
    case GgufType.INT16:
      return src.take(2, what).readInt16LE(0);
    case GgufType.UINT32:
      return src.take(4, what).readUInt32LE(0);
    case GgufType.INT32:
      return src.take(4, what).readInt32LE(0);
    case GgufType.FLOAT32:
      return src.take(4, what).readFloatLE(0);
    case GgufType.FLOAT64:
      return src.take(8, what).readDoubleLE(0);
    case GgufType.BOOL:
      return src.take(1, what).readUInt8(0) !== 0;
    case GgufType.STRING:
      return src.str(what);
    case GgufType.UINT64: {
      const v = src.take(8, what).readBigUInt64LE(0);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case GgufType.INT64: {
      const v = src.take(8, what).readBigInt64LE(0);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
    default:
      throw new KvevictError(`${src.file}: unknown GGUF value type ${type} in ${printable(what)}`);
  }
}

/** Read a GGUF file's header: metadata and tensor infos (data is read on demand with readGgufTensorF32). */
export function readGguf(file: string): GgufFile {
  if (!existsSync(file)) throw new KvevictError(`${file}: file not found`);
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const src = new ByteSource(fd, size, file);
    if (size < 24 || src.u32('magic') !== GGUF_MAGIC) throw new KvevictError(`${file}: not a GGUF file (bad magic)`);
    const version = src.u32('version');
    if (version !== 2 && version !== 3) throw new KvevictError(`${file}: unsupported GGUF version ${version} (supported: 2, 3)`);
    const nTensors = src.u64('tensor count');
    const nKv = src.u64('metadata count');
    // every entry takes at least 8 bytes: counts past that cannot be real (checked before anything is allocated)
    if (nTensors > size / 8) throw new KvevictError(`${file}: GGUF tensor count ${nTensors} is more than the file could hold`);
    if (nKv > size / 8) throw new KvevictError(`${file}: GGUF metadata count ${nKv} is more than the file could hold`);
    const metadata = new Map<string, GgufKv>();
    for (let i = 0; i < nKv; i++) {
      const key = src.str('metadata key');
      const shown = printable(key);
      const type = src.u32(`type of ${shown}`) as GgufType;
      if (type === GgufType.ARRAY) {
        const arrayType = src.u32(`element type of ${shown}`) as GgufType;
        const n = src.u64(`length of ${shown}`);
        if (n > size - src.pos)
          throw new KvevictError(
            `${file}: truncated or corrupt: metadata ${shown} claims ${n} elements, and ${size - src.pos} bytes remain`,
          );
        if (arrayType === GgufType.ARRAY) throw new KvevictError(`${file}: metadata ${shown}: nested arrays are not supported`);
        const value: GgufScalar[] = new Array(n);
        for (let j = 0; j < n; j++) value[j] = readScalar(src, arrayType, shown);
        metadata.set(key, { type, arrayType, value });
      } else {
        metadata.set(key, { type, value: readScalar(src, type, shown) });
      }
    }
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = src.str('tensor name');
      const shown = printable(name);
      const nd = src.u32(`dimension count of ${shown}`);
      if (nd > 4) throw new KvevictError(`${file}: tensor ${shown} has ${nd} dimensions`);
      const dims: number[] = [];
      for (let j = 0; j < nd; j++) dims.push(src.u64(`dimension of ${shown}`));
      if (dims.reduce((a, b) => a * b, 1) > size)
        throw new KvevictError(`${file}: tensor ${shown} has dims [${dims}], more values than the file could hold`);
      const type = src.u32(`type of ${shown}`) as GgmlType;
      const offset = src.u64(`offset of ${shown}`);
      tensors.push({ name, dims, type, offset });
    }
    const al = metadata.get('general.alignment');
    const alignment = al ? al.value : DEFAULT_ALIGNMENT;
    if (
      typeof alignment !== 'number' ||
      !Number.isInteger(alignment) ||
      alignment < 1 ||
      (alignment & (alignment - 1)) !== 0 ||
      alignment > 1 << 20
    ) {
      throw new KvevictError(`${file}: general.alignment ${printable(String(alignment))} must be a power of two`);
    }
    const dataOffset = Math.ceil(src.pos / alignment) * alignment;
    const spans: { begin: number; end: number; name: string }[] = [];
    for (const t of tensors) {
      const shown = printable(t.name);
      const bytes = tensorBytes(t, file);
      if (t.offset % alignment !== 0)
        throw new KvevictError(`${file}: tensor ${shown} starts at offset ${t.offset}, not a multiple of the alignment ${alignment}`);
      if (dataOffset + t.offset + bytes > size)
        throw new KvevictError(
          `${file}: truncated: tensor ${shown} ends at byte ${dataOffset + t.offset + bytes} but the file has ${size}`,
        );
      spans.push({ begin: t.offset, end: t.offset + bytes, name: shown });
    }
    spans.sort((a, b) => a.begin - b.begin);
    for (let i = 1; i < spans.length; i++) {
      if (spans[i].begin < spans[i - 1].end)
        throw new KvevictError(`${file}: tensor ${spans[i].name} overlaps tensor ${spans[i - 1].name}`);
    }
    // writers lay tensors out back to back, each padded to the alignment: a gap means a size (type or dims) is wrong
    const pad = (n: number) => Math.ceil(n / alignment) * alignment;
    let expect = 0;
    for (const sp of spans) {
      if (sp.begin !== expect)
        throw new KvevictError(
          `${file}: tensor ${sp.name} starts at data offset ${sp.begin}, where the tensors before it end at ${expect}: a tensor's type or dims do not match its data`,
        );
      expect = pad(sp.end);
    }
    if (spans.length > 0 && size - dataOffset > expect)
      throw new KvevictError(`${file}: ${size - dataOffset - expect} bytes after the last tensor belong to no tensor`);
    const names = new Set<string>();
    for (const t of tensors) {
      if (names.has(t.name)) throw new KvevictError(`${file}: tensor ${printable(t.name)} appears twice`);
      names.add(t.name);
    }
    return { file, version, metadata, tensors, alignment, dataOffset };
  } finally {
    closeSync(fd);
  }
}

function tensorBytes(t: GgufTensorInfo, file: string): number {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.type === GgmlType.F32) return count * 4;
  if (t.type === GgmlType.F16 || t.type === GgmlType.BF16) return count * 2;
  const f = blockFormat(t.type);
  if (!f) {
    const supported = [0, 1, 30, ...QUANT_TYPES.map((q) => quantFormatOfGgmlType(q))].map(ggmlTypeName).join(', ');
    throw new KvevictError(`${file}: tensor ${printable(t.name)} has ggml type ${ggmlTypeName(t.type)}; supported: ${supported}`);
  }
  if (t.dims.length === 0 || t.dims[0] % f.blockSize !== 0)
    throw new KvevictError(
      `${file}: tensor ${printable(t.name)} is ${ggmlTypeName(t.type)} with rows of ${t.dims[0]} values, not whole blocks of ${f.blockSize}`,
    );
  return (count / f.blockSize) * f.blockBytes;
}

const quantFormatOfGgmlType = (q: QuantType) => quantFormatOfType(q).ggml;

/** One tensor's data as float32 (F32, F16 or BF16). */
export function readGgufTensorF32(g: GgufFile, t: GgufTensorInfo): Float32Array {
  const n = tensorBytes(t, g.file);
  const fd = openSync(g.file, 'r');
  try {
    const buf = Buffer.allocUnsafe(n);
    const got = readSync(fd, buf, 0, n, g.dataOffset + t.offset);
    if (got !== n) throw new KvevictError(`${g.file}: truncated while reading tensor ${t.name}`);
    return decodeToF32(buf, t.type === GgmlType.F32 ? 'F32' : t.type === GgmlType.F16 ? 'F16' : 'BF16');
  } finally {
    closeSync(fd);
  }
}

/** A metadata value, checked. */
export function ggufValue(g: GgufFile, key: string): GgufValue | undefined {
  return g.metadata.get(key)?.value;
}

/** A size from the metadata: a positive integer up to `max` (checked before the model is allocated). */
function needSize(g: GgufFile, key: string, max: number): number {
  const v = need(g, key);
  if (!Number.isInteger(v) || v < 1 || v > max)
    throw new KvevictError(`${g.file}: GGUF metadata ${key} must be an integer in 1..${max}, got ${v}`);
  return v;
}

function need(g: GgufFile, key: string): number {
  const v = ggufValue(g, key);
  if (typeof v !== 'number') throw new KvevictError(`${g.file}: missing or non-numeric GGUF metadata ${key}`);
  return v;
}

/** ModelConfig from GGUF metadata (architectures llama, qwen2, qwen3). */
export function ggufConfig(g: GgufFile): ModelConfig {
  const arch = ggufValue(g, 'general.architecture');
  if (arch !== 'llama' && arch !== 'qwen2' && arch !== 'qwen3')
    throw new KvevictError(`${g.file}: unsupported GGUF architecture ${JSON.stringify(arch)} (supported: llama, qwen2, qwen3)`);
  const hiddenSize = needSize(g, `${arch}.embedding_length`, 65536);
  const numHeads = needSize(g, `${arch}.attention.head_count`, 1024);
  const tokens = ggufValue(g, 'tokenizer.ggml.tokens');
  const embd = g.tensors.find((t) => t.name === 'token_embd.weight');
  const vocabSize =
    (ggufValue(g, `${arch}.vocab_size`) as number | undefined) ?? embd?.dims[1] ?? (Array.isArray(tokens) ? tokens.length : 0);
  const headDim = (ggufValue(g, `${arch}.attention.key_length`) as number | undefined) ?? hiddenSize / numHeads;
  const eos = ggufValue(g, 'tokenizer.ggml.eos_token_id');
  const bos = ggufValue(g, 'tokenizer.ggml.bos_token_id');
  const cfg: ModelConfig = {
    modelType: arch,
    hiddenSize,
    intermediateSize: needSize(g, `${arch}.feed_forward_length`, 1 << 18),
    numLayers: needSize(g, `${arch}.block_count`, 1024),
    numHeads,
    numKvHeads: (ggufValue(g, `${arch}.attention.head_count_kv`) as number | undefined) ?? numHeads,
    headDim,
    vocabSize,
    rmsNormEps: need(g, `${arch}.attention.layer_norm_rms_epsilon`),
    ropeTheta: (ggufValue(g, `${arch}.rope.freq_base`) as number | undefined) ?? 10000,
    ropeScaling: null,
    maxPositions: (ggufValue(g, `${arch}.context_length`) as number | undefined) ?? 4096,
    tieWordEmbeddings: !g.tensors.some((t) => t.name === 'output.weight'),
    attentionBias: g.tensors.some((t) => t.name === 'blk.0.attn_q.bias'),
    qkNorm: g.tensors.some((t) => t.name === 'blk.0.attn_q_norm.weight'),
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds: typeof eos === 'number' ? [eos] : [],
  };
  const bad = (what: string) => new KvevictError(`${g.file}: GGUF metadata: ${what}`);
  if (!Number.isInteger(cfg.numKvHeads) || cfg.numKvHeads < 1 || cfg.numHeads % cfg.numKvHeads !== 0)
    throw bad(`${arch}.attention.head_count_kv ${cfg.numKvHeads} must divide head_count ${cfg.numHeads}`);
  if (!Number.isInteger(cfg.headDim) || cfg.headDim % 2 !== 0 || cfg.headDim > 1024)
    throw bad(`the head size ${cfg.headDim} must be an even integer`);
  if (!Number.isInteger(cfg.vocabSize) || cfg.vocabSize < 1 || cfg.vocabSize > 1 << 22)
    throw bad(`vocabulary size ${cfg.vocabSize} must be an integer in 1..${1 << 22}`);
  if (!(cfg.rmsNormEps > 0 && cfg.rmsNormEps < 1))
    throw bad(`${arch}.attention.layer_norm_rms_epsilon ${cfg.rmsNormEps} must be in (0, 1)`);
  if (!(cfg.ropeTheta > 1)) throw bad(`${arch}.rope.freq_base ${cfg.ropeTheta} must be greater than 1`);
  if (!Number.isInteger(cfg.maxPositions) || cfg.maxPositions < 1)
    throw bad(`${arch}.context_length ${cfg.maxPositions} must be a positive integer`);
  const freqs = g.tensors.find((t) => t.name === 'rope_freqs.weight');
  if (freqs) {
    // Llama-3's scaling as convert_hf_to_gguf.py stores it: a divisor per rotary frequency
    if (freqs.type !== GgmlType.F32 || freqs.dims.length !== 1 || freqs.dims[0] !== cfg.headDim / 2)
      throw bad(
        `rope_freqs.weight must be F32 with ${cfg.headDim / 2} values (head size / 2), got ${ggmlTypeName(freqs.type)} [${freqs.dims}]`,
      );
    const f = Array.from(readGgufTensorF32(g, freqs));
    const at = f.findIndex((x) => !(x > 0 && Number.isFinite(x)));
    if (at >= 0) throw bad(`rope_freqs.weight[${at}] is ${f[at]}: every factor must be positive and finite`);
    cfg.ropeFreqFactors = f;
  }
  return cfg;
}

/**
 * Weights from a GGUF file written in llama.cpp's layout (undoing the Q/K permutation for "llama"). Matrices in
 * a block format stay in it (their rows reordered for the permutation; the bytes in one huge-page arena);
 * float ones are decoded to float32.
 */
export function ggufWeights(g: GgufFile, cfg: ModelConfig): Weights {
  for (const t of g.tensors) {
    if (t.dims.length === 1 && blockFormat(t.type))
      throw new KvevictError(
        `${g.file}: tensor ${printable(t.name)} is 1-D in ${ggmlTypeName(t.type)}; 1-D tensors must be F32, F16 or BF16`,
      );
  }
  const byName = new Map(g.tensors.map((t) => [t.name, t]));
  const arch = ggufArchitecture(cfg.modelType);
  const find = (name: string, shape: number[]): GgufTensorInfo => {
    const t = byName.get(name);
    if (!t) throw new KvevictError(`${g.file}: missing tensor ${name}`);
    const want = [...shape].reverse();
    if (t.dims.length !== want.length || t.dims.some((d, i) => d !== want[i]))
      throw new KvevictError(`${g.file}: tensor ${name} has dims [${t.dims}], expected [${want}]`);
    return t;
  };
  const { hiddenSize: h, numHeads: H, numKvHeads: Hkv, headDim: d, vocabSize: vocab } = cfg;
  type Slot = [name: string, shape: number[], qkHeads: number, set: (w: Weights, m: MatrixData) => void, get: (w: Weights) => MatrixData];
  const matrices: Slot[] = [['token_embd.weight', [vocab, h], 0, (w, m) => (w.embed = m), (w) => w.embed]];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `blk.${l}.`;
    const at = (n: LinearName, file: string, heads = 0) =>
      matrices.push([p + file, linearShape(cfg, n), heads, (w, m) => (w.layers[l][n] = m), (w) => w.layers[l][n]]);
    at('q', 'attn_q.weight', H);
    at('k', 'attn_k.weight', Hkv);
    at('v', 'attn_v.weight');
    at('o', 'attn_output.weight');
    at('gate', 'ffn_gate.weight');
    at('up', 'ffn_up.weight');
    at('down', 'ffn_down.weight');
  }
  if (!cfg.tieWordEmbeddings) matrices.push(['output.weight', [vocab, h], 0, (w, m) => (w.lmHead = m), (w) => w.lmHead]);
  // block matrices stay in their blocks, BF16 and F16 ones in their bits
  const keptAsStored = (t: GgufTensorInfo) => blockFormat(t.type) !== undefined || t.type === GgmlType.BF16 || t.type === GgmlType.F16;
  const quantized = matrices.filter(([name, shape]) => keptAsStored(find(name, shape)));

  // all float32 / f16: packed as a safetensors load is (huge pages with the native kernels), each tensor decoded,
  // then copied in; with matrices kept as stored: those in one arena, the float ones in their own arrays
  const packed = quantized.length === 0;
  const w: Weights = packed ? allocateWeights(cfg) : emptyWeights(cfg);
  const fd = openSync(g.file, 'r');
  try {
    const arena = quantized.length ? quantArena(quantized.map(([name, shape]) => tensorBytes(find(name, shape), g.file))) : [];
    let qi = 0;
    for (const [name, shape, heads, set, getter] of matrices) {
      const get = (x: Weights) => getter(x) as Float32Array;
      const t = find(name, shape);
      const f = blockFormat(t.type);
      if (f || t.type === GgmlType.BF16 || t.type === GgmlType.F16) {
        const bytes = arena[qi++];
        readExactly(fd, g, t, bytes);
        if (heads > 0 && arch === 'llama') unpermuteRowBytes(bytes, shape[0], bytes.length / shape[0], heads);
        if (f) set(w, new QuantMatrix(f.type, shape[0], shape[1], bytes));
        else if (t.type === GgmlType.F16) {
          const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
          const bad = halves.findIndex((x) => (x & 0x7c00) === 0x7c00);
          if (bad >= 0)
            throw new KvevictError(`${g.file}: tensor ${name} holds a non-finite value at index ${bad}: weights must be finite`);
          set(w, halves);
        } else {
          const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
          const bad = firstNonFiniteBf16(bits);
          if (bad >= 0)
            throw new KvevictError(`${g.file}: tensor ${name} holds a non-finite value at index ${bad}: weights must be finite`);
          set(w, new Bf16Matrix(bits, shape[0], shape[1]));
        }
      } else {
        let x = readGgufTensorF32(g, t);
        if (heads > 0 && arch === 'llama') x = unpermuteQK(x, heads, shape[1]);
        if (packed) get(w).set(x);
        else set(w, x);
      }
    }
  } finally {
    closeSync(fd);
  }
  const vec = (name: string, shape: number[], heads = 0) => {
    let x = readGgufTensorF32(g, find(name, shape));
    if (heads > 0 && arch === 'llama') x = unpermuteQK(x, heads, 1);
    return x;
  };
  // the 1-D tensors (norms, biases): float32 in every file llama.cpp writes
  w.layers.forEach((L, l) => {
    const p = `blk.${l}.`;
    L.inputNorm = vec(p + 'attn_norm.weight', [h]);
    if (cfg.attentionBias) {
      L.qBias = vec(p + 'attn_q.bias', [H * d], H);
      L.kBias = vec(p + 'attn_k.bias', [Hkv * d], Hkv);
      L.vBias = vec(p + 'attn_v.bias', [Hkv * d]);
    }
    if (cfg.qkNorm) {
      L.qNorm = vec(p + 'attn_q_norm.weight', [d]);
      L.kNorm = vec(p + 'attn_k_norm.weight', [d]);
    }
    L.postNorm = vec(p + 'ffn_norm.weight', [h]);
  });
  w.finalNorm = vec('output_norm.weight', [h]);
  if (cfg.tieWordEmbeddings) w.lmHead = w.embed;
  return w;
}

/** Byte arrays of the given sizes in one large buffer (huge pages with the native kernels), each 64-byte aligned. */
function quantArena(sizes: number[]): Uint8Array[] {
  const at: number[] = [];
  let total = 0;
  for (const n of sizes) {
    at.push(total);
    total += Math.ceil(n / 64) * 64;
  }
  const buf = kernels().largeBuffer(Math.max(64, total));
  return sizes.map((n, i) => new Uint8Array(buf, at[i], n));
}

function readExactly(fd: number, g: GgufFile, t: GgufTensorInfo, into: Uint8Array): void {
  let done = 0;
  while (done < into.length) {
    const got = readSync(fd, into, done, into.length - done, g.dataOffset + t.offset + done);
    if (got <= 0) throw new KvevictError(`${g.file}: truncated while reading tensor ${printable(t.name)}`);
    done += got;
  }
}

/** unpermuteQK on a matrix's stored rows (block rows, bf16 rows): each row moves whole, in place. */
function unpermuteRowBytes(data: Uint8Array, rows: number, rowBytes: number, heads: number): void {
  const d = rows / heads,
    half = d / 2;
  const out = new Uint8Array(data.length);
  for (let hh = 0; hh < heads; hh++)
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < half; j++) {
        const hf = hh * d + i * half + j, // rotate_half layout
          gg = hh * d + 2 * j + i; // interleaved layout (the file's)
        out.set(data.subarray(gg * rowBytes, (gg + 1) * rowBytes), hf * rowBytes);
      }
  data.set(out);
}

/**
 * A Tokenizer rebuilt from GGUF tokenizer metadata: "gpt2" (byte-level BPE with the stored vocab and merges;
 * the pre-tokenizer follows tokenizer.ggml.pre, "smollm": digits split one by one, then GPT-2's regex) or
 * "llama" (SentencePiece BPE: scores, byte fallback, the leading-space rule; src/model/spm.ts). BOS is added
 * by encode(text, { addSpecialTokens: true }) as tokenizer.ggml.add_bos_token says, or by llama.cpp's default
 * when it is absent (SentencePiece: yes, gpt2: no).
 */
export function ggufTokenizer(g: GgufFile): Tokenizer {
  const model = ggufValue(g, 'tokenizer.ggml.model');
  if (model !== 'gpt2' && model !== 'llama')
    throw new KvevictError(`${g.file}: tokenizer.ggml.model ${JSON.stringify(model)} is not supported (supported: gpt2, llama)`);
  const tokens = ggufValue(g, 'tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || tokens.length === 0 || tokens.some((t) => typeof t !== 'string'))
    throw new KvevictError(`${g.file}: tokenizer.ggml.tokens is missing or not a list of strings`);
  const toks = tokens as string[];
  const types = (ggufValue(g, 'tokenizer.ggml.token_type') as number[] | undefined) ?? [];
  const name = (key: string): string | null => {
    const id = ggufValue(g, key);
    return typeof id === 'number' && id < toks.length ? toks[id] : null;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = ggufValue(g, key);
    return typeof v === 'boolean' ? v : fallback;
  };
  const tokenizerConfig: Record<string, unknown> = {
    bos_token: name('tokenizer.ggml.bos_token_id'),
    eos_token: name('tokenizer.ggml.eos_token_id'),
    unk_token: name('tokenizer.ggml.unknown_token_id'),
    pad_token: name('tokenizer.ggml.padding_token_id'),
    add_bos_token: flag('tokenizer.ggml.add_bos_token', model === 'llama'),
    add_eos_token: flag('tokenizer.ggml.add_eos_token', false),
    clean_up_tokenization_spaces: false,
  };
  const tmpl = ggufValue(g, 'tokenizer.chat_template');
  const chatTemplate = typeof tmpl === 'string' ? tmpl : null;
  if (types.length !== 0 && types.length !== toks.length)
    throw new KvevictError(`${g.file}: tokenizer.ggml.token_type has ${types.length} entries for ${toks.length} tokens`);
  if (model === 'llama') {
    const scores = ggufValue(g, 'tokenizer.ggml.scores');
    if (!Array.isArray(scores) || scores.length !== toks.length || scores.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      throw new KvevictError(
        `${g.file}: a SentencePiece vocabulary needs tokenizer.ggml.scores, one finite number per token (${Array.isArray(scores) ? scores.length : 'none'} for ${toks.length} tokens)`,
      );
    }
    const unk = ggufValue(g, 'tokenizer.ggml.unknown_token_id');
    return spmTokenizer(
      {
        tokens: toks,
        scores: scores as number[],
        types: toks.map((_, i) => types[i] ?? GgufTokenType.NORMAL),
        addSpacePrefix: flag('tokenizer.ggml.add_space_prefix', true),
        unkId: typeof unk === 'number' && unk < toks.length ? unk : null,
        source: g.file,
      },
      tokenizerConfig,
      { chatTemplate },
    );
  }
  const merges = (ggufValue(g, 'tokenizer.ggml.merges') as string[] | undefined) ?? [];
  const known = new Set(toks);
  merges.forEach((m, i) => {
    const parts = typeof m === 'string' ? m.split(' ') : [];
    if (parts.length !== 2 || !known.has(parts[0]) || !known.has(parts[1]) || !known.has(parts[0] + parts[1])) {
      throw new KvevictError(`${g.file}: tokenizer.ggml.merges entry ${i} (${printable(String(m))}) does not fit the vocabulary`);
    }
  });
  const pre = ggufValue(g, 'tokenizer.ggml.pre');
  const vocab: Record<string, number> = {};
  const addedTokens: object[] = [];
  toks.forEach((t, id) => {
    if (types[id] === GgufTokenType.UNUSED) return;
    vocab[t] = id;
    if (types[id] === GgufTokenType.CONTROL || types[id] === GgufTokenType.USER_DEFINED) {
      addedTokens.push({
        id,
        content: t,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: types[id] === GgufTokenType.CONTROL,
      });
    }
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: merges.length > 0 };
  const preTokenizer =
    pre === 'smollm' ? { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel] } : byteLevel;
  const tokenizerJson = {
    version: '1.0',
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModelJson(vocab, merges),
  };
  return new KvTokenizer(tokenizerJson, tokenizerConfig, { chatTemplate, source: g.file });
}

/** Load a GGUF model (F32/F16/BF16 tensors) as config, weights and tokenizer. */
export function loadGguf(file: string): { config: ModelConfig; weights: Weights; tokenizer: Tokenizer } {
  const g = readGguf(file);
  const config = ggufConfig(g);
  return { config, weights: ggufWeights(g, config), tokenizer: ggufTokenizer(g) };
}
