/**
 * ggml's block-quantized weight formats, as GGUF files store them: each row of a matrix is a run of blocks,
 * and a block holds `blockSize` weights in `blockBytes` bytes (scales as IEEE halves, then packed integers).
 * Layouts follow ggml-common.h; docs/formats.md describes each.
 */

/** The block formats kvevict reads, computes with and writes. */
export type QuantType = 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q8_0' | 'q4_k' | 'q5_k' | 'q6_k';

export interface QuantFormat {
  readonly type: QuantType;
  /** ggml_type id in a GGUF tensor record */
  readonly ggml: number;
  /** weights per block */
  readonly blockSize: number;
  /** bytes per block */
  readonly blockBytes: number;
  /** the largest error of one dequantized weight relative to its block's largest magnitude (tests' bound) */
  readonly relativeBound: number;
}

const formats: QuantFormat[] = [
  { type: 'q4_0', ggml: 2, blockSize: 32, blockBytes: 18, relativeBound: 1 / 8 },
  { type: 'q4_1', ggml: 3, blockSize: 32, blockBytes: 20, relativeBound: 1 / 15 },
  { type: 'q5_0', ggml: 6, blockSize: 32, blockBytes: 22, relativeBound: 1 / 16 },
  { type: 'q5_1', ggml: 7, blockSize: 32, blockBytes: 24, relativeBound: 1 / 31 },
  { type: 'q8_0', ggml: 8, blockSize: 32, blockBytes: 34, relativeBound: 1 / 127 },
  { type: 'q4_k', ggml: 12, blockSize: 256, blockBytes: 144, relativeBound: 1 / 8 },
  { type: 'q5_k', ggml: 13, blockSize: 256, blockBytes: 176, relativeBound: 1 / 16 },
  { type: 'q6_k', ggml: 14, blockSize: 256, blockBytes: 210, relativeBound: 1 / 32 },
];

export const QUANT_TYPES: readonly QuantType[] = formats.map((f) => f.type);

export function quantFormat(type: QuantType): QuantFormat {
  const f = formats.find((x) => x.type === type);
  if (!f) throw new Error(`internal error: unknown quant type ${String(type)}`);
  return f;
}

/** The format of a ggml type id, or undefined when it is not a block format read here. */
export function quantFormatOfGgml(ggml: number): QuantFormat | undefined {
  return formats.find((f) => f.ggml === ggml);
}

/** Index of each format in the native addon's table (native/quant.c's KvQuantType). */
export function nativeQuantIndex(type: QuantType): number {
  return QUANT_TYPES.indexOf(type);
}

/**
 * A weight matrix [rows, cols] kept in a block format: row r is bytes [r * rowBytes, (r + 1) * rowBytes) of
 * `data`. Products read the blocks directly; a prefill and the embedding lookup dequantize rows as they need them.
 */
export class QuantMatrix {
  readonly format: QuantFormat;
  readonly rowBytes: number;

  constructor(
    readonly type: QuantType,
    readonly rows: number,
    readonly cols: number,
    readonly data: Uint8Array,
  ) {
    this.format = quantFormat(type);
    if (cols % this.format.blockSize !== 0)
      throw new Error(`internal error: ${type} rows of ${cols} weights are not whole blocks of ${this.format.blockSize}`);
    this.rowBytes = (cols / this.format.blockSize) * this.format.blockBytes;
    if (data.length !== rows * this.rowBytes)
      throw new Error(`internal error: ${type} [${rows}, ${cols}] needs ${rows * this.rowBytes} bytes, got ${data.length}`);
  }

  /** element count, as a Float32Array's length (shape checks compare it) */
  get length(): number {
    return this.rows * this.cols;
  }

  /** rows [first, first + count) as their own matrix (no copy) */
  rowRange(first: number, count: number): QuantMatrix {
    return new QuantMatrix(this.type, count, this.cols, this.data.subarray(first * this.rowBytes, (first + count) * this.rowBytes));
  }
}

/**
 * A weight matrix [rows, cols] of bfloat16 bits, as a bf16 safetensors file stores it (each value is the top
 * half of a float32's bits, so widening is exact). Decode products widen in registers; a prefill widens blocks
 * of rows for OpenBLAS.
 */
export class Bf16Matrix {
  constructor(
    readonly bits: Uint16Array,
    readonly rows: number,
    readonly cols: number,
  ) {
    if (bits.length !== rows * cols)
      throw new Error(`internal error: bf16 [${rows}, ${cols}] needs ${rows * cols} values, got ${bits.length}`);
  }

  get length(): number {
    return this.rows * this.cols;
  }
}

/** Bytes of `count` weights (whole rows of `cols`) in format `type`. */
export function quantBytes(type: QuantType, count: number): number {
  const f = quantFormat(type);
  return (count / f.blockSize) * f.blockBytes;
}
