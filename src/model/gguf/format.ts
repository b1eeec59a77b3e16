/** GGUF v3 (llama.cpp's model format): its value and tensor types, the file's parsed form, and the Q/K row permutation of its "llama" architecture. */
import { quantFormatOfGgml, type QuantFormat } from '../../quant/formats.js';

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

/** A 64-bit value as a number where it is one exactly. */
const exact = (v: bigint): number | bigint =>
  v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;

/** The number types of GGUF metadata: size, and Buffer's little-endian reader and writer. */
export const GGUF_NUMBERS = new Map<
  GgufType,
  { bytes: number; read: (b: Buffer) => number | bigint; write: (b: Buffer, v: number | bigint) => void }
>([
  [GgufType.UINT8, { bytes: 1, read: (b) => b.readUInt8(0), write: (b, v) => b.writeUInt8(Number(v)) }],
  [GgufType.INT8, { bytes: 1, read: (b) => b.readInt8(0), write: (b, v) => b.writeInt8(Number(v)) }],
  [GgufType.UINT16, { bytes: 2, read: (b) => b.readUInt16LE(0), write: (b, v) => b.writeUInt16LE(Number(v)) }],
  [GgufType.INT16, { bytes: 2, read: (b) => b.readInt16LE(0), write: (b, v) => b.writeInt16LE(Number(v)) }],
  [GgufType.UINT32, { bytes: 4, read: (b) => b.readUInt32LE(0), write: (b, v) => b.writeUInt32LE(Number(v)) }],
  [GgufType.INT32, { bytes: 4, read: (b) => b.readInt32LE(0), write: (b, v) => b.writeInt32LE(Number(v)) }],
  [GgufType.FLOAT32, { bytes: 4, read: (b) => b.readFloatLE(0), write: (b, v) => b.writeFloatLE(Number(v)) }],
  [GgufType.FLOAT64, { bytes: 8, read: (b) => b.readDoubleLE(0), write: (b, v) => b.writeDoubleLE(Number(v)) }],
  [GgufType.UINT64, { bytes: 8, read: (b) => exact(b.readBigUInt64LE(0)), write: (b, v) => b.writeBigUInt64LE(BigInt(v)) }],
  [GgufType.INT64, { bytes: 8, read: (b) => exact(b.readBigInt64LE(0)), write: (b, v) => b.writeBigInt64LE(BigInt(v)) }],
]);

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
export function blockFormat(type: GgmlType): QuantFormat | undefined {
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

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const DEFAULT_ALIGNMENT = 32;

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
