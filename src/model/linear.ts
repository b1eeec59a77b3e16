import { packedWeightFloats, type Kernels } from '../kernels/index.js';
import { ARENA_MAX_BYTES, packFloat32, packUint16 } from '../kernels/arena.js';
import { BATCH_GEMV_MAX_ROWS, type GemvPart, type MatrixWeights, type WeightMatrix } from '../kernels/types.js';
import { Bf16Matrix, QuantMatrix } from '../quant/formats.js';
import type { ModelConfig } from './config.js';
import { LINEAR_NAMES, linearShape, type LinearName } from './weights.js';

/** Most float32 elements a prefill widens from f16 at once (4 MB: the block stays in cache for its sgemm). */
const WIDEN_FLOATS = 1 << 20;

/** The groups of a layer's linear weights packed back to back for the prefill: each group is one fused product. */
const PACKED_GROUPS: readonly (readonly LinearName[])[] = [['q', 'k', 'v'], ['o'], ['gate', 'up'], ['down']];

/**
 * A layer's linear weights packed for the prefill (Kernels.packWeights; float32, or halves with f16 weights):
 * q|k|v, k|v (its tail), o, gate|up, down.
 */
interface PackedLayer {
  qkv: WeightMatrix;
  kv: WeightMatrix;
  o: WeightMatrix;
  gateUp: WeightMatrix;
  down: WeightMatrix;
}

/** Where a layer's projections write: the model's scratch buffers. */
export interface ProjectionBuffers {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  gate: Float32Array;
  up: Float32Array;
}

/**
 * y[n, outDim] = x[n, inDim] . W[outDim, inDim]^T (+ y when accumulate): sgemv for one row (OpenBLAS sgemm
 * with M=1 is slow), OpenBLAS sgemm otherwise; f16 and block-quantized weights are widened to float32 in
 * blocks of output rows, each block's sgemm writing its columns of y.
 */
export class LinearKernel {
  private widened = new Float32Array(0);
  /**
   * Set during a batched decode step (each row another sequence's token): up to BATCH_GEMV_MAX_ROWS rows then
   * run as decode rows do (sgemvBatch: the weights, float32, halves or blocks as they are, read from memory once
   * for all rows): 1.9-3.5x faster than sgemm for float32 at 2-8 rows, and halves and blocks are not widened.
   */
  decodeRows = false;

  run(k: Kernels, n: number, outDim: number, inDim: number, x: Float32Array, w: MatrixWeights, y: Float32Array, accumulate: boolean): void {
    if (n === 1) k.sgemv(outDim, inDim, w, x, y, accumulate);
    else if (this.decodeRows && n <= BATCH_GEMV_MAX_ROWS) k.sgemvBatch(n, outDim, inDim, w, x, y, accumulate);
    else if (w instanceof Float32Array) k.sgemm(false, true, n, outDim, inDim, 1, x, inDim, w, inDim, accumulate ? 1 : 0, y, outDim);
    else if (w instanceof QuantMatrix && w.rows === outDim && k.quantGemm(n, x, w, y, outDim, accumulate)) return;
    else if (w instanceof Bf16Matrix && w.rows === outDim && k.bf16Gemm(n, x, [{ w, y, ldy: outDim }], accumulate)) return;
    else {
      const rowsPerBlock = Math.max(1, Math.min(outDim, Math.floor(WIDEN_FLOATS / inDim)));
      if (this.widened.length < rowsPerBlock * inDim) this.widened = new Float32Array(rowsPerBlock * inDim);
      for (let r0 = 0; r0 < outDim; r0 += rowsPerBlock) {
        const rows = Math.min(rowsPerBlock, outDim - r0);
        if (w instanceof Uint16Array) k.halfToFloat(w.subarray(r0 * inDim, (r0 + rows) * inDim), this.widened, rows * inDim);
        else if (w instanceof Bf16Matrix) k.bf16ToFloat(w.bits.subarray(r0 * inDim, (r0 + rows) * inDim), this.widened, rows * inDim);
        else k.dequantRows(w, r0, rows, this.widened);
        k.sgemm(false, true, n, rows, inDim, 1, x, inDim, this.widened, inDim, accumulate ? 1 : 0, y.subarray(r0), outDim);
      }
    }
  }
}

/**
 * Several matrices against the same rows of x (q, k and v; gate and up), each into its own y: one product where
 * every matrix is bf16 and the kernels have the bf16 dot product (x rounded and packed once), else one run each.
 */
function runParts(
  plain: LinearKernel,
  k: Kernels,
  n: number,
  inDim: number,
  x: Float32Array,
  parts: readonly { w: MatrixWeights; outDim: number; y: Float32Array }[],
): void {
  const bf16 =
    n > 1 && !(plain.decodeRows && n <= BATCH_GEMV_MAX_ROWS) && parts.every((p) => p.w instanceof Bf16Matrix && p.w.rows === p.outDim);
  if (
    bf16 &&
    k.bf16Gemm(
      n,
      x,
      parts.map((p) => ({ w: p.w as Bf16Matrix, y: p.y, ldy: p.outDim })),
      false,
    )
  )
    return;
  for (const p of parts) plain.run(k, n, p.outDim, inDim, x, p.w, p.y, false);
}

/**
 * The linear layers of one decoder layer, with the choice of path behind them: one decode row reads the
 * row-major weights (q, k and v in one pass of the thread pool; gate and up likewise); a prefill computes from
 * the packed copy when there is one (q|k|v and gate|up fused) and from the row-major weights otherwise.
 */
export class LayerProjections {
  private qkvParts: GemvPart[] | null = null;
  private gateUpParts: GemvPart[] | null = null;
  /** the buffer the parts write q into: the scratch buffers are replaced when they grow */
  private partsQ: Float32Array | null = null;

  constructor(
    private readonly cfg: ModelConfig,
    private readonly w: Record<LinearName, MatrixWeights>,
    private readonly packed: PackedLayer | null,
    private readonly plain: LinearKernel,
  ) {}

  private parts(b: ProjectionBuffers): void {
    if (this.partsQ === b.q && this.gateUpParts![0].y === b.gate) return;
    const { numHeads: H, numKvHeads: Hkv, headDim: d, intermediateSize: inter } = this.cfg;
    this.qkvParts = [
      { w: this.w.q, n: H * d, y: b.q },
      { w: this.w.k, n: Hkv * d, y: b.k },
      { w: this.w.v, n: Hkv * d, y: b.v },
    ];
    this.gateUpParts = [
      { w: this.w.gate, n: inter, y: b.gate },
      { w: this.w.up, n: inter, y: b.up },
    ];
    this.partsQ = b.q;
  }

  /** q for the last `out` of the `n` rows of xb (all n for one row), k and v for all n. */
  qkv(k: Kernels, n: number, out: number, xb: Float32Array, b: ProjectionBuffers): void {
    const { hiddenSize: hidden, numHeads: H, numKvHeads: Hkv, headDim: d } = this.cfg;
    const qDim = H * d,
      kvDim = Hkv * d;
    const pk = this.plain.decodeRows ? null : this.packed;
    if (n === 1) {
      this.parts(b);
      k.sgemvParts(hidden, xb, this.qkvParts!);
    } else if (pk && out === n) {
      k.sgemmPackedParts(
        n,
        hidden,
        xb,
        hidden,
        pk.qkv,
        [
          { n: qDim, y: b.q },
          { n: kvDim, y: b.k },
          { n: kvDim, y: b.v },
        ],
        false,
      );
    } else if (!pk && out === n) {
      runParts(this.plain, k, n, hidden, xb, [
        { w: this.w.q, outDim: qDim, y: b.q },
        { w: this.w.k, outDim: kvDim, y: b.k },
        { w: this.w.v, outDim: kvDim, y: b.v },
      ]);
    } else {
      if (out > 0) this.plain.run(k, out, qDim, hidden, out === n ? xb : xb.subarray((n - out) * hidden), this.w.q, b.q, false);
      if (pk)
        k.sgemmPackedParts(
          n,
          hidden,
          xb,
          hidden,
          pk.kv,
          [
            { n: kvDim, y: b.k },
            { n: kvDim, y: b.v },
          ],
          false,
        );
      else
        runParts(this.plain, k, n, hidden, xb, [
          { w: this.w.k, outDim: kvDim, y: b.k },
          { w: this.w.v, outDim: kvDim, y: b.v },
        ]);
    }
  }

  /** x += att . W_o^T over `rows` rows. */
  o(k: Kernels, rows: number, att: Float32Array, x: Float32Array): void {
    const { hiddenSize: hidden, numHeads: H, headDim: d } = this.cfg;
    this.product(k, rows, hidden, H * d, att, this.w.o, x, this.packed?.o);
  }

  /** gate and up of `rows` rows of xb. */
  gateUp(k: Kernels, rows: number, xb: Float32Array, b: ProjectionBuffers): void {
    const { hiddenSize: hidden, intermediateSize: inter } = this.cfg;
    if (rows === 1) {
      this.parts(b);
      k.sgemvParts(hidden, xb, this.gateUpParts!);
    } else if (this.packed && !this.plain.decodeRows) {
      k.sgemmPackedParts(
        rows,
        hidden,
        xb,
        hidden,
        this.packed.gateUp,
        [
          { n: inter, y: b.gate },
          { n: inter, y: b.up },
        ],
        false,
      );
    } else {
      runParts(this.plain, k, rows, hidden, xb, [
        { w: this.w.gate, outDim: inter, y: b.gate },
        { w: this.w.up, outDim: inter, y: b.up },
      ]);
    }
  }

  /** x += h . W_down^T over `rows` rows. */
  down(k: Kernels, rows: number, h: Float32Array, x: Float32Array): void {
    const { hiddenSize: hidden, intermediateSize: inter } = this.cfg;
    this.product(k, rows, hidden, inter, h, this.w.down, x, this.packed?.down);
  }

  private product(
    k: Kernels,
    n: number,
    outDim: number,
    inDim: number,
    x: Float32Array,
    w: MatrixWeights,
    y: Float32Array,
    packed?: WeightMatrix,
  ): void {
    if (packed && n > 1 && !this.plain.decodeRows) k.sgemmPacked(n, outDim, inDim, x, inDim, packed, y, outDim, true);
    else this.plain.run(k, n, outDim, inDim, x, w, y, true);
  }
}

/**
 * Every layer's linear weights packed for the prefill (float32, or halves with f16 weights): q, k and v back
 * to back, and gate and up, so that each group is one fused product (sgemmPackedParts).
 */
export function packLayers(
  cfg: ModelConfig,
  layers: readonly Record<LinearName, WeightMatrix>[],
  k: Kernels,
  halves: boolean,
): PackedLayer[] {
  // ordinary pages: the packed product reuses each panel from cache, so huge pages gain it nothing, and faulting
  // them in (compacted on demand) took twice as long
  const floats = (n: LinearName) => packedWeightFloats(...linearShape(cfg, n));
  const counts = layers.flatMap(() => PACKED_GROUPS.map((group) => group.reduce((sum, n) => sum + floats(n), 0)));
  const limits = { minBytes: Infinity, maxBytes: ARENA_MAX_BYTES };
  const packed: WeightMatrix[] = halves ? packUint16(counts, k, limits) : packFloat32(counts, k, limits);
  return layers.map((w, l) => {
    const [qkv, o, gateUp, down] = PACKED_GROUPS.map((group, g) => {
      const buf = packed[l * PACKED_GROUPS.length + g];
      let offset = 0;
      for (const n of group) {
        k.packWeights(w[n], ...linearShape(cfg, n), buf.subarray(offset));
        offset += floats(n);
      }
      return buf;
    });
    return { qkv, kv: qkv.subarray(floats('q')), o, gateUp, down };
  });
}

/** A record of the linear layers' matrices, the i-th of LINEAR_NAMES from at(i). */
export function byLinearName<T>(at: (i: number) => T): Record<LinearName, T> {
  return Object.fromEntries(LINEAR_NAMES.map((n, i) => [n, at(i)])) as Record<LinearName, T>;
}
