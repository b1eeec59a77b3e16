import { createRequire } from 'node:module';
import { jsKernels, sgemmPackedByPart, sgemvRowByRow } from './js.js';
import { BATCH_GEMV_MAX_ROWS, type AttendArgs, type CacheRows, type GemvPart, type Kernels, type WeightMatrix } from './types.js';
import { Bf16Matrix, QuantMatrix, nativeQuantIndex } from '../quant/formats.js';

/** What OpenBLAS chose when the addon loaded, and the attention block sizes compiled in. */
export interface NativeInfo {
  corename: string;
  config: string;
  threads: number;
  procs: number;
  attendRowBlock: number;
  attendKeyChunk: number;
  /** 'avx512', 'avx2' or 'scalar' (absent in an addon built before it) */
  simd?: string;
  /** 1 where a bf16 prefill's products run on vdpbf16ps (built for it, and timed faster than the FMA here) */
  bf16Dot?: number;
}

/** The kernels the addon exports with the Kernels interface's own signatures. */
type SameAsKernels =
  | 'sgemm'
  | 'rmsnorm'
  | 'rmsnormGrad'
  | 'rope'
  | 'siluMul'
  | 'causalSoftmax'
  | 'causalSoftmaxGrad'
  | 'add'
  | 'siluMulGrad'
  | 'crossEntropy'
  | 'crossEntropyGrad'
  | 'softmaxRowsAccumulate';
/** Those an older addon may lack (the TypeScript twins stand in). */
type OptionalKernels = 'largeBuffer' | 'packWeights' | 'sgemmPacked' | 'copyRows' | 'halfToFloat' | 'floatToHalf' | 'softmaxRowsMax';

/** The raw addon (native/addon.c): positional arguments, every array bounds-checked on the C side. */
export interface NativeAddon extends Pick<Kernels, SameAsKernels>, Partial<Pick<Kernels, OptionalKernels>> {
  sgemv(n: number, k: number, w: WeightMatrix, x: Float32Array, y: Float32Array, accumulate: boolean): void;
  /** sgemmPackedParts(m, k, x, ldx, packed, accumulate, n0, c0, n1, c1, ...): up to 4 parts */
  sgemmPackedParts?(
    m: number,
    k: number,
    x: Float32Array,
    ldx: number,
    packed: WeightMatrix,
    accumulate: boolean,
    ...parts: (number | Float32Array)[]
  ): void;
  /** quantGemvParts(k, x, accumulate, type0, data0, n0, y0, ...): up to 4 block-quantized parts (absent before quant.c) */
  quantGemvParts?(k: number, x: Float32Array, accumulate: boolean, ...parts: (number | Uint8Array | Float32Array)[]): void;
  /** bf16GemvParts(k, x, accumulate, w0, n0, y0, ...): sgemvParts over bfloat16 bits (absent before bf16 weights) */
  bf16GemvParts?(k: number, x: Float32Array, accumulate: boolean, ...parts: (number | Uint16Array | Float32Array)[]): void;
  bf16ToFloat?(src: Uint16Array, dst: Float32Array, n: number): void;
  /** dequantBlocks(type, src, blocks, dst) */
  dequantBlocks?(type: number, src: Uint8Array, blocks: number, dst: Float32Array): void;
  /** bf16Gemm(k, x, m, accumulate, bits0, n0, y0, ldy0, ...): false where the bf16 dot product is not built or not faster */
  bf16Gemm?(k: number, x: Float32Array, m: number, accumulate: boolean, ...parts: (number | Uint16Array | Float32Array)[]): boolean;
  /** quantGemm(type, data, n, k, x, m, y, ldy, accumulate): false where the build has no integer product */
  quantGemm?(
    type: number,
    data: Uint8Array,
    n: number,
    k: number,
    x: Float32Array,
    m: number,
    y: Float32Array,
    ldy: number,
    accumulate: boolean,
  ): boolean;
  /** GFLOP/s of independent float32 FMA chains on that many threads: the measured compute ceiling (benchmarks). */
  fmaPeak?(threads: number): number;
  /** readPeak(threads, megabytes): GB/s of a plain read of a buffer of that size (a floor of the memory rate: streams that fetch ahead run faster) */
  readPeak?(threads: number, megabytes: number): number;
  attendHead(
    q: Float32Array,
    qRowStride: number,
    out: Float32Array,
    rows: number,
    headDim: number,
    firstHead: number,
    group: number,
    qPos: Int32Array,
    keys: CacheRows,
    values: CacheRows,
    kPos: Int32Array,
    n: number,
    scale: number,
  ): void;
  /** the batched products (x [nvec, k], y [nvec, n]); absent before batched decoding */
  sgemvPartsBatch?(k: number, x: Float32Array, nvec: number, accumulate: boolean, w: WeightMatrix, n: number, y: Float32Array): void;
  bf16GemvPartsBatch?(k: number, x: Float32Array, nvec: number, accumulate: boolean, w: Uint16Array, n: number, y: Float32Array): void;
  quantGemvPartsBatch?(
    k: number,
    x: Float32Array,
    nvec: number,
    accumulate: boolean,
    type: number,
    data: Uint8Array,
    n: number,
    y: Float32Array,
  ): void;
  /** sgemvParts(k, x, accumulate, w0, n0, y0, w1, n1, y1, ...): up to 4 parts */
  sgemvParts?(k: number, x: Float32Array, accumulate: boolean, ...parts: (WeightMatrix | number)[]): void;
  info(): NativeInfo;
  /** OpenBLAS threads for later calls. */
  setThreads(threads: number): void;
}

/** Load the addon at `path` (OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS now, once per process). */
export function loadNativeAddon(path: string): NativeAddon {
  const require = createRequire(import.meta.url);
  return require(path) as NativeAddon;
}

/** A bf16 or block matrix must have `k` columns and at least `n` rows (its shape is known; a float one's is not). */
function checkShape(w: QuantMatrix | Bf16Matrix, n: number, k: number): void {
  if (w.cols !== k || w.rows < n)
    throw new RangeError(`sgemv: a ${w instanceof Bf16Matrix ? 'bf16' : w.type} matrix [${w.rows}, ${w.cols}] for n ${n}, k ${k}`);
}

/** Wrap the OpenBLAS addon at `path` in the Kernels interface. */
export function makeNativeKernels(path: string): Kernels {
  const addon = loadNativeAddon(path);
  /** The bf16 parts of a fused product in one native call (the TypeScript twin for an older addon). */
  const bf16Parts = (k: number, x: Float32Array, parts: readonly GemvPart[], accumulate: boolean): void => {
    const bf = parts.filter((p): p is GemvPart & { w: Bf16Matrix } => p.w instanceof Bf16Matrix);
    if (!addon.bf16GemvParts) {
      for (const p of bf) jsKernels.sgemv(p.n, k, p.w, x, p.y, accumulate);
      return;
    }
    for (const p of bf) checkShape(p.w, p.n, k);
    addon.bf16GemvParts(k, x, accumulate, ...bf.flatMap((p) => [p.w.bits, p.n, p.y]));
  };
  /** The quantized parts of a fused product in one native call (the TypeScript twin for an addon built before quant.c). */
  const quantParts = (k: number, x: Float32Array, parts: readonly GemvPart[], accumulate: boolean): void => {
    const quant = parts.filter((p): p is GemvPart & { w: QuantMatrix } => p.w instanceof QuantMatrix);
    if (!addon.quantGemvParts) {
      for (const p of quant) jsKernels.sgemv(p.n, k, p.w, x, p.y, accumulate);
      return;
    }
    if (quant.length > 4) throw new RangeError('sgemvParts: at most 4 parts');
    for (const p of quant) checkShape(p.w, p.n, k);
    addon.quantGemvParts(k, x, accumulate, ...quant.flatMap((p) => [nativeQuantIndex(p.w.type), p.w.data, p.n, p.y]));
  };
  const sgemv: Kernels['sgemv'] = (n, k, w, x, y, accumulate = false) => {
    if (w instanceof QuantMatrix) quantParts(k, x, [{ w, n, y }], accumulate);
    else if (w instanceof Bf16Matrix) bf16Parts(k, x, [{ w, n, y }], accumulate);
    else addon.sgemv(n, k, w, x, y, accumulate);
  };
  return {
    name: 'native',
    simd: addon.info().simd ?? 'avx512',
    sgemm: addon.sgemm,
    sgemv,
    sgemvBatch(rows, n, k, w, x, y, accumulate = false) {
      if (rows > BATCH_GEMV_MAX_ROWS) throw new RangeError(`sgemvBatch: at most ${BATCH_GEMV_MAX_ROWS} rows, got ${rows}`);
      if (!addon.sgemvPartsBatch) return sgemvRowByRow(sgemv, rows, n, k, w, x, y, accumulate);
      if (x.length < rows * k || y.length < rows * n) throw new RangeError(`sgemvBatch: x or y too short for ${rows} rows`);
      if (w instanceof QuantMatrix || w instanceof Bf16Matrix) checkShape(w, n, k);
      if (w instanceof QuantMatrix) addon.quantGemvPartsBatch!(k, x, rows, accumulate, nativeQuantIndex(w.type), w.data, n, y);
      else if (w instanceof Bf16Matrix) addon.bf16GemvPartsBatch!(k, x, rows, accumulate, w.bits, n, y);
      else addon.sgemvPartsBatch(k, x, rows, accumulate, w, n, y);
    },
    bf16ToFloat: addon.bf16ToFloat ?? jsKernels.bf16ToFloat,
    quantGemm(rows, x, w, y, ldy, accumulate) {
      if (!addon.quantGemm) return false;
      return addon.quantGemm(nativeQuantIndex(w.type), w.data, w.rows, w.cols, x, rows, y, ldy, accumulate);
    },
    bf16Gemm(rows, x, parts, accumulate) {
      if (!addon.bf16Gemm || parts.length === 0) return false;
      const k = parts[0].w.cols;
      if (parts.some((p) => p.w.cols !== k)) throw new RangeError('bf16Gemm: every part needs the same number of columns');
      return addon.bf16Gemm(k, x, rows, accumulate, ...parts.flatMap((p) => [p.w.bits, p.w.rows, p.y, p.ldy]));
    },
    dequantRows(m, first, count, out) {
      if (!addon.dequantBlocks) return jsKernels.dequantRows(m, first, count, out);
      if (first < 0 || first + count > m.rows) throw new RangeError('dequantRows: rows out of range');
      const blocks = (count * m.cols) / m.format.blockSize;
      addon.dequantBlocks(nativeQuantIndex(m.type), m.data.subarray(first * m.rowBytes, (first + count) * m.rowBytes), blocks, out);
    },
    largeBuffer: addon.largeBuffer ?? jsKernels.largeBuffer,
    copyRows: addon.copyRows ?? jsKernels.copyRows,
    // an addon built before the packed sgemm: the TypeScript twins (correct, slow)
    packWeights: addon.packWeights ?? jsKernels.packWeights,
    sgemmPacked: addon.sgemmPacked ?? jsKernels.sgemmPacked,
    // an addon built before the half kernels: the TypeScript ones (sgemv with halves would then throw a RangeError)
    halfToFloat: addon.halfToFloat ?? jsKernels.halfToFloat,
    floatToHalf: addon.floatToHalf ?? jsKernels.floatToHalf,
    rmsnorm: addon.rmsnorm,
    rmsnormGrad: addon.rmsnormGrad,
    rope: addon.rope,
    siluMul: addon.siluMul,
    causalSoftmax: addon.causalSoftmax,
    causalSoftmaxGrad: addon.causalSoftmaxGrad,
    siluMulGrad: addon.siluMulGrad,
    add: addon.add,
    crossEntropy: addon.crossEntropy,
    crossEntropyGrad: addon.crossEntropyGrad,
    softmaxRowsAccumulate: addon.softmaxRowsAccumulate,
    // an addon built before it: the TypeScript one
    softmaxRowsMax: addon.softmaxRowsMax ?? jsKernels.softmaxRowsMax,
    attendHead(a: AttendArgs) {
      addon.attendHead(a.q, a.qRowStride, a.out, a.rows, a.headDim, a.firstHead, a.group, a.qPos, a.keys, a.values, a.kPos, a.n, a.scale);
    },
    sgemmPackedParts(m, k, x, ldx, packed, parts, accumulate) {
      // an addon built before the fused product: one packed product per part
      if (!addon.sgemmPackedParts)
        return sgemmPackedByPart(addon.sgemmPacked ?? jsKernels.sgemmPacked, m, k, x, ldx, packed, parts, accumulate);
      if (parts.length > 4) throw new RangeError('sgemmPackedParts: at most 4 parts');
      addon.sgemmPackedParts(m, k, x, ldx, packed, accumulate, ...parts.flatMap((p) => [p.n, p.y]));
    },
    sgemvParts(k, x, parts, accumulate = false) {
      if (parts.some((p) => p.w instanceof QuantMatrix || p.w instanceof Bf16Matrix)) {
        // quantized parts in one pass (their activations quantized once), bf16 ones in another; float or half
        // ones beside them by sgemv
        if (parts.some((p) => p.w instanceof QuantMatrix)) quantParts(k, x, parts, accumulate);
        if (parts.some((p) => p.w instanceof Bf16Matrix)) bf16Parts(k, x, parts, accumulate);
        for (const p of parts)
          if (!(p.w instanceof QuantMatrix) && !(p.w instanceof Bf16Matrix)) addon.sgemv(p.n, k, p.w, x, p.y, accumulate);
        return;
      }
      const floats = parts as readonly (GemvPart & { w: WeightMatrix })[];
      if (addon.sgemvParts === undefined) {
        // an addon built before sgemvParts: one sgemv per part
        if (parts.length > 4) throw new RangeError('sgemvParts: at most 4 parts');
        for (const p of floats) addon.sgemv(p.n, k, p.w, x, p.y, accumulate);
        return;
      }
      const [a, b, c, d] = floats;
      switch (parts.length) {
        case 0:
          return;
        case 1:
          return addon.sgemvParts(k, x, accumulate, a.w, a.n, a.y);
        case 2:
          return addon.sgemvParts(k, x, accumulate, a.w, a.n, a.y, b.w, b.n, b.y);
        case 3:
          return addon.sgemvParts(k, x, accumulate, a.w, a.n, a.y, b.w, b.n, b.y, c.w, c.n, c.y);
        case 4:
          return addon.sgemvParts(k, x, accumulate, a.w, a.n, a.y, b.w, b.n, b.y, c.w, c.n, c.y, d.w, d.n, d.y);
        default:
          throw new RangeError('sgemvParts: at most 4 parts');
      }
    },
  };
}
