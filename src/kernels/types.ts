/**
 * The numeric primitives everything else is built on. Row-major throughout.
 * Two implementations share this interface: `js` (plain TypeScript, portable, the test oracle)
 * and `native` (an N-API addon over OpenBLAS, the fast path).
 */
import type { Bf16Matrix, QuantMatrix } from '../quant/formats.js';

/** Attention of the query heads of one GQA group against one KV head's compact cache. */
export interface AttendArgs {
  /** Queries: query head `h` of row `r` starts at `q[r * qRowStride + h * headDim]` (after RoPE). */
  q: Float32Array;
  qRowStride: number;
  /** Output, same layout as `q`; only the group's heads are written. */
  out: Float32Array;
  rows: number;
  headDim: number;
  /** Query heads `firstHead .. firstHead + group - 1` share this KV head. */
  firstHead: number;
  group: number;
  /** Absolute position of each query row; a query sees the keys whose position is <= its own. */
  qPos: Int32Array;
  /** Compact keys and values `[n, headDim]` sorted by ascending position `kPos[n]`: both float32, or both f16 bits. */
  keys: CacheRows;
  values: CacheRows;
  kPos: Int32Array;
  n: number;
  /** Usually 1 / sqrt(headDim). */
  scale: number;
}

/** Rows of a KV cache: float32, or IEEE half bits (an f16 cache), widened exactly as they are read. */
export type CacheRows = Float32Array | Uint16Array;

/**
 * A weight matrix [out, in], row-major: float32, or IEEE half bits (f16) in a Uint16Array. Halves are
 * widened exactly to float32 as they are read, so a half matrix computes as the float32 matrix of its values.
 */
export type WeightMatrix = Float32Array | Uint16Array;

/** What a decode's matrix-vector product reads: float32 or half weights, or a block-quantized matrix (GGUF Q4_K, ...). */
export type MatrixWeights = WeightMatrix | QuantMatrix | Bf16Matrix;

/** One matrix of a fused matrix-vector product: y[n] (+)= w[n, k] . x. */
export interface GemvPart {
  w: MatrixWeights;
  n: number;
  y: Float32Array;
}

/** One output of a fused product from packed weights (Kernels.sgemmPackedParts): y[m, n] (+)= X . W^T. */
export interface PackedPart {
  n: number;
  y: Float32Array;
}

/** One matrix of Kernels.bf16Gemm and where it writes: y[rows, ldy]. */
export interface Bf16Part {
  w: Bf16Matrix;
  y: Float32Array;
  ldy: number;
}

/** Output columns per strip of packed weights (Kernels.packWeights); the native micro-kernel's tile width. */
export const PACK_STRIP = 32;

/** Floats that Kernels.packWeights writes for W[n, k]: n rounded up to whole strips, times k. */
export function packedWeightFloats(n: number, k: number): number {
  return Math.ceil(n / PACK_STRIP) * PACK_STRIP * k;
}

/** What the forward pass runs on: products, norms, RoPE, the cache rows, attention, half floats. */
export interface InferenceKernels {
  readonly name: 'js' | 'native';
  /** the vector instructions the native kernels were built for ('avx512', 'avx2', 'scalar'); absent for js */
  readonly simd?: string;
  /**
   * C[m,n] = alpha * op(A)[m,k] . op(B)[k,n] + beta * C[m,n].
   * op(A) is A[m,k] (lda >= k) or, when transA, A stored as [k,m] (lda >= m); same for B.
   * lda/ldb/ldc are row strides in elements. Weights are stored [out, in], so a linear layer is transB = true.
   */
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    ldc: number,
  ): void;
  /**
   * W[n, k] (a linear layer's weights, stored [out, in]) rearranged for sgemmPacked into `out`, which holds
   * packedWeightFloats(n, k) elements: strips of PACK_STRIP rows of W, each stored k-major, zero-padded past n.
   * float32 weights pack into a Float32Array, f16 ones (half bits) into a Uint16Array: the same layout of halves.
   */
  packWeights(w: WeightMatrix, n: number, k: number, out: WeightMatrix): void;
  /**
   * C[m, n] = X[m, k] . W^T (+ C when accumulate), W packed by packWeights (float32 or halves, widened as they
   * are read); ldx and ldc are row strides. The prefill's linear layers: native, the weights' packing is done
   * once instead of in every sgemm call.
   */
  sgemmPacked(
    m: number,
    n: number,
    k: number,
    x: Float32Array,
    ldx: number,
    packed: WeightMatrix,
    c: Float32Array,
    ldc: number,
    accumulate: boolean,
  ): void;
  /**
   * Up to 4 products of one X in one pass: part p's y[m, n_p] (+)= X[m, k] . W_p^T, where `packed` holds the
   * parts' packed weights back to back (packedWeightFloats(n_p, k) each). A layer's q, k and v (and its gate and
   * up) share the packing of X and one set of work items instead of three (two) calls.
   */
  sgemmPackedParts(
    m: number,
    k: number,
    x: Float32Array,
    ldx: number,
    packed: WeightMatrix,
    parts: readonly PackedPart[],
    accumulate: boolean,
  ): void;
  /**
   * y[n] = W[n,k] . x[k], or y += W . x when accumulate. W may be f16 (a decode step then streams half the bytes)
   * or block-quantized: then x is quantized to 8 bits in blocks of 32 and each block's product is an integer one.
   */
  sgemv(n: number, k: number, w: MatrixWeights, x: Float32Array, y: Float32Array, accumulate?: boolean): void;
  /** Rows [first, first + count) of a block-quantized matrix as float32 into out (ggml's dequantization). */
  dequantRows(m: QuantMatrix, first: number, count: number, out: Float32Array): void;
  /**
   * A prefill's product with block-quantized weights in integers: y[rows, ldy] (+)= x[rows, w.cols] . W^T, x
   * quantized to 8 bits in blocks of 32 as a decode row's is (so each row equals sgemv's result up to the float
   * scaling's order). Returns false where the kernels have no integer product (the caller widens W instead).
   */
  quantGemm(rows: number, x: Float32Array, w: QuantMatrix, y: Float32Array, ldy: number, accumulate: boolean): boolean;
  /**
   * A prefill's products with bf16 weights on the CPU's bf16 dot product: for each part, y[rows, ldy] (+)= x[rows,
   * w.cols] . W^T, x rounded to bf16 first (as llama.cpp does), the sums float32; up to 4 parts of the same
   * w.cols share x's rounding (q, k and v; gate and up). Returns false, every y untouched, where the kernels have
   * no such product or it is not faster than widening W for the float32 one (the caller widens instead).
   */
  bf16Gemm(rows: number, x: Float32Array, parts: readonly Bf16Part[], accumulate: boolean): boolean;
  /**
   * Several matrices against one vector (q, k, v of a decode row; gate and up), in one pass of the thread pool:
   * parts[p].y[n] = parts[p].w[n, k] . x, or += when accumulate. At most 4 parts.
   */
  sgemvParts(k: number, x: Float32Array, parts: readonly GemvPart[], accumulate?: boolean): void;
  /**
   * A few rows at once (a batched decode step: one row per sequence): y[rows, n] = x[rows, k] . W[n, k]^T (+ y),
   * each row as sgemv computes it, with W read from memory once for all rows (each block of W stays in cache
   * while every row takes it). At most BATCH_GEMV_MAX_ROWS rows.
   */
  sgemvBatch(rows: number, n: number, k: number, w: MatrixWeights, x: Float32Array, y: Float32Array, accumulate?: boolean): void;
  /**
   * A zeroed buffer for large long-lived arrays (weights). Native: its own 2 MB-aligned mapping advised for
   * transparent huge pages, freed when the buffer is collected; JS: a plain ArrayBuffer.
   */
  largeBuffer(bytes: number): ArrayBuffer;
  /** dst[i] = the float32 value of the IEEE half bits src[i], for i < n (exact). */
  halfToFloat(src: Uint16Array, dst: Float32Array, n: number): void;
  /** dst[i] = the float32 value of bfloat16 bits src[i] (exact), for i < n. */
  bf16ToFloat(src: Uint16Array, dst: Float32Array, n: number): void;
  /** dst[i] = src[i] rounded to the nearest IEEE half (ties to even; beyond 65504 becomes infinity), for i < n. */
  floatToHalf(src: Float32Array, dst: Uint16Array, n: number): void;
  /** out[r] = x[r] / rms(x[r]) * weight, for `rows` rows of `dim`. `out` may be `x`. */
  rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): void;
  /**
   * In-place rotary embedding, half-split layout (Hugging Face rotate_half): x is [rows, heads, headDim];
   * row r uses angle table row positions[r]: cos[p * headDim/2 + i], sin[p * headDim/2 + i].
   */
  rope(x: Float32Array, rows: number, heads: number, headDim: number, positions: Int32Array, cos: Float32Array, sin: Float32Array): void;
  /**
   * A strided block of rows into a compact one: dst[dstOffset + r * width + i] = src[srcOffset + r * srcStride + i]
   * for r < rows, i < width (a KV head's rows of a [rows, Hkv, d] block joining its cache); into halves (an f16
   * cache), each value is rounded to the nearest half (ties to even).
   */
  copyRows(dst: CacheRows, dstOffset: number, src: Float32Array, srcOffset: number, srcStride: number, rows: number, width: number): void;
  /** out[i] = a[i] + b[i] for i < n; `out` may be `a` (accumulation). */
  add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void;
  /** out[i] = silu(gate[i]) * up[i] for i < n. `out` may alias `gate`. */
  siluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;
  /** Causal (by position) softmax attention of one GQA group against one KV head. */
  attendHead(args: AttendArgs): void;
}

/** What the presses' attention scoring adds. */
export interface ScoringKernels {
  /**
   * Column sums of row softmaxes: for row r < rows and group head g of s[rows * group, width],
   * out[g * width + j] += softmax(s[row, 0 .. vis[r]))[j] for j < vis[r]. s is overwritten.
   */
  softmaxRowsAccumulate(s: Float32Array, rows: number, group: number, width: number, vis: Int32Array, out: Float32Array): void;
  /** The same softmaxes reduced by the maximum: out[g * width + j] = max(out[g * width + j], softmax(...)[j]). s is overwritten. */
  softmaxRowsMax(s: Float32Array, rows: number, group: number, width: number, vis: Int32Array, out: Float32Array): void;
}

/** The backward passes and losses of training. */
export interface TrainingKernels {
  /**
   * RMSNorm backward, accumulating (either output may be null), with s_r = 1 / sqrt(mean(x_r^2) + eps):
   * dx[r, i] += s_r w_i dy[r, i] - s_r^3 / dim (sum_j w_j dy[r, j] x[r, j]) x[r, i]; dw[i] += sum_r dy[r, i] x[r, i] s_r.
   */
  rmsnormGrad(
    dx: Float32Array | null,
    dw: Float32Array | null,
    dy: Float32Array,
    x: Float32Array,
    weight: Float32Array,
    rows: number,
    dim: number,
    eps: number,
  ): void;
  /**
   * Training's causal softmax over a score block e[rows, n] in place: row r sees keys 0 .. r0 + (r % m)
   * (r is query r % m of a block starting at sequence row r0; the GQA group's heads are stacked).
   * e = exp(e - rowmax) on the visible keys (not normalised), 0 after; inv[r] = 1 / row sum.
   */
  causalSoftmax(e: Float32Array, inv: Float32Array, rows: number, n: number, m: number, r0: number): void;
  /** Its gradient in place: dS = e * inv * (dS - dd[r]) on the visible keys, 0 after. */
  causalSoftmaxGrad(
    dS: Float32Array,
    e: Float32Array,
    inv: Float32Array,
    dd: Float32Array,
    rows: number,
    n: number,
    m: number,
    r0: number,
  ): void;
  /**
   * Softmax cross-entropy of logits[rows, vocab]: argmax[r] of every row (the first maximum); where
   * weights[r] != 0, lse[r] = log sum_j exp(logits[r, j]) and rowLoss[r] = lse[r] - logits[r, targets[r]];
   * 0 in both elsewhere.
   */
  crossEntropy(
    logits: Float32Array,
    rows: number,
    vocab: number,
    targets: Int32Array,
    weights: Float32Array,
    lse: Float32Array,
    rowLoss: Float32Array,
    argmax: Int32Array,
  ): void;
  /** Its gradient, accumulating on rows with coef[r] != 0: grad[r, j] += coef[r] * (exp(logits[r, j] - lse[r]) - [j == targets[r]]). */
  crossEntropyGrad(
    grad: Float32Array,
    logits: Float32Array,
    rows: number,
    vocab: number,
    targets: Int32Array,
    lse: Float32Array,
    coef: Float32Array,
  ): void;
  /** SwiGLU backward, accumulating: dGate += dy * up * silu'(gate), dUp += dy * silu(gate) (either may be null). */
  siluMulGrad(
    dGate: Float32Array | null,
    dUp: Float32Array | null,
    dy: Float32Array,
    gate: Float32Array,
    up: Float32Array,
    n: number,
  ): void;
}

/** Every kernel: two implementations (native, js) behind one interface, split by purpose. */
export interface Kernels extends InferenceKernels, ScoringKernels, TrainingKernels {}

/** Most rows sgemvBatch takes (the native kernels' limit). */
export const BATCH_GEMV_MAX_ROWS = 16;
