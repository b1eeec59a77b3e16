/** Writing GGUF v3: metadata with llama.cpp's keys, tensors with its names and the Q/K row order its "llama" architecture expects. */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { KvevictError } from '../../errors.js';
import { ropeInvFreq } from '../config.js';
import type { ModelConfig, ModelType } from '../config.js';
import { encodeHalf } from '../safetensors.js';
import { floatMatrix, linearShape } from '../weights.js';
import type { Tokenizer } from '../tokenizer.js';
import type { MatrixData, Weights } from '../types.js';
import { QUANT_TYPES, type QuantType } from '../../quant/formats.js';
import { quantizeMatrix } from '../../quant/quantize.js';
import type { SpmVocab } from '../spm.js';
import {
  DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgmlType,
  GgufTokenType,
  GgufType,
  blockFormat,
  permuteQK,
  GGUF_NUMBERS,
  type GgufKv,
  type GgufScalar,
} from './format.js';

class ByteSink {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  number(type: GgufType, v: number | bigint): void {
    const t = GGUF_NUMBERS.get(type)!;
    const b = Buffer.alloc(t.bytes);
    t.write(b, v);
    this.push(b);
  }
  u32(v: number): void {
    this.number(GgufType.UINT32, v);
  }
  u64(v: number | bigint): void {
    this.number(GgufType.UINT64, v);
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
  if (type === GgufType.STRING) {
    if (typeof v !== 'string') throw new Error(`internal error: GGUF ${key}: expected a string`);
    sink.str(v);
  } else if (type === GgufType.BOOL) sink.number(GgufType.UINT8, v ? 1 : 0);
  else if (GGUF_NUMBERS.has(type)) {
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new Error(`internal error: GGUF ${key}: expected a number, got ${typeof v}`);
    if (typeof v === 'bigint' && type !== GgufType.UINT64 && type !== GgufType.INT64)
      throw new Error(`internal error: GGUF ${key}: a bigint for a 32-bit type`);
    sink.number(type, v);
  } else throw new Error(`internal error: GGUF ${key}: cannot write type ${type}`);
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
