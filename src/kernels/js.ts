import { expNonPositive } from './fast-exp.js';
import { floatBitsToHalf, floatToHalf, halfTable } from '../util/half.js';
import {
  BATCH_GEMV_MAX_ROWS,
  PACK_STRIP,
  packedWeightFloats,
  type AttendArgs,
  type CacheRows,
  type Kernels,
  type MatrixWeights,
} from './types.js';
import { Bf16Matrix, QuantMatrix } from '../quant/formats.js';
import { dequantizeRows, quantGemv, quantizeActivations } from '../quant/blocks.js';

/** Plain TypeScript kernels: the portable fallback and the oracle that `native` is tested against. */
export const jsKernels: Kernels = {
  name: 'js',

  sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
    const row = new Float32Array(n);
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * lda + i] : a[i * lda + p];
        if (av === 0) continue;
        if (transB) {
          for (let j = 0; j < n; j++) row[j] += av * b[j * ldb + p];
        } else {
          const off = p * ldb;
          for (let j = 0; j < n; j++) row[j] += av * b[off + j];
        }
      }
      const off = i * ldc;
      if (beta === 0) for (let j = 0; j < n; j++) c[off + j] = alpha * row[j];
      else for (let j = 0; j < n; j++) c[off + j] = alpha * row[j] + beta * c[off + j];
    }
  },

  sgemv(n, k, w, x, y, accumulate = false) {
    if (w instanceof QuantMatrix) {
      if (w.rows < n || w.cols !== k) throw new RangeError(`sgemv: a ${w.type} matrix [${w.rows}, ${w.cols}] for n ${n}, k ${k}`);
      quantGemv(w.rows === n ? w : w.rowRange(0, n), quantizeActivations(x, k), y, accumulate);
      return;
    }
    if (w instanceof Bf16Matrix) {
      const b = w.bits;
      const u = new Uint32Array(1),
        f = new Float32Array(u.buffer);
      for (let i = 0; i < n; i++) {
        let s = 0;
        const off = i * k;
        for (let p = 0; p < k; p++) {
          u[0] = b[off + p] << 16;
          s += f[0] * x[p];
        }
        y[i] = accumulate ? y[i] + s : s;
      }
      return;
    }
    if (w instanceof Uint16Array) {
      const t = halfTable();
      for (let i = 0; i < n; i++) {
        let s = 0;
        const off = i * k;
        for (let p = 0; p < k; p++) s += t[w[off + p]] * x[p];
        y[i] = accumulate ? y[i] + s : s;
      }
      return;
    }
    for (let i = 0; i < n; i++) {
      let s = 0;
      const off = i * k;
      for (let p = 0; p < k; p++) s += w[off + p] * x[p];
      y[i] = accumulate ? y[i] + s : s;
    }
  },

  bf16ToFloat(src, dst, n) {
    if (src.length < n || dst.length < n) throw new RangeError('bf16ToFloat: an array is shorter than n');
    const u = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) u[i] = src[i] << 16;
  },

  quantGemm() {
    return false; // the widened product is the TypeScript path
  },
  bf16Gemm() {
    return false; // likewise
  },
  dequantRows(m, first, count, out) {
    if (first < 0 || first + count > m.rows || out.length < count * m.cols) throw new RangeError('dequantRows: rows out of range');
    dequantizeRows(m, first, count, out);
  },

  packWeights(w, n, k, out) {
    if (w.length < n * k || out.length < packedWeightFloats(n, k)) throw new RangeError('packWeights: w or out is too short');
    if (w.constructor !== out.constructor)
      throw new RangeError('packWeights: w and out must both be Float32Array or both Uint16Array (f16 bits)');
    for (let s = 0; s * PACK_STRIP < n; s++) {
      const base = s * PACK_STRIP * k;
      for (let j = 0; j < PACK_STRIP; j++) {
        const row = s * PACK_STRIP + j;
        for (let i = 0; i < k; i++) out[base + i * PACK_STRIP + j] = row < n ? w[row * k + i] : 0;
      }
    }
  },

  sgemmPacked(m, n, k, x, ldx, packed, c, ldc, accumulate) {
    if (ldx < k || ldc < n) throw new RangeError('sgemmPacked: a row stride is below its row width');
    if (packed.length < packedWeightFloats(n, k)) throw new RangeError('sgemmPacked: packed is too short');
    let wv = packed;
    if (packed instanceof Uint16Array) jsKernels.halfToFloat(packed, (wv = new Float32Array(packedWeightFloats(n, k))), wv.length);
    const acc = new Float32Array(PACK_STRIP);
    for (let r = 0; r < m; r++) {
      for (let s = 0; s * PACK_STRIP < n; s++) {
        acc.fill(0);
        const base = s * PACK_STRIP * k;
        for (let i = 0; i < k; i++) {
          const xv = x[r * ldx + i];
          const off = base + i * PACK_STRIP;
          for (let j = 0; j < PACK_STRIP; j++) acc[j] += xv * wv[off + j];
        }
        const cols = Math.min(PACK_STRIP, n - s * PACK_STRIP);
        const o = r * ldc + s * PACK_STRIP;
        for (let j = 0; j < cols; j++) c[o + j] = accumulate ? c[o + j] + acc[j] : acc[j];
      }
    }
  },

  sgemmPackedParts(m, k, x, ldx, packed, parts, accumulate) {
    sgemmPackedByPart(jsKernels.sgemmPacked, m, k, x, ldx, packed, parts, accumulate);
  },

  copyRows(dst, dstOffset, src, srcOffset, srcStride, rows, width) {
    if (rows > 0 && srcStride < width) throw new RangeError('copyRows: srcStride must be >= width');
    if (dstOffset + rows * width > dst.length || (rows > 0 && srcOffset + (rows - 1) * srcStride + width > src.length)) {
      throw new RangeError('copyRows: a row falls outside its array');
    }
    for (let r = 0; r < rows; r++) {
      const s = srcOffset + r * srcStride;
      if (dst instanceof Float32Array) dst.set(src.subarray(s, s + width), dstOffset + r * width);
      else for (let i = 0; i < width; i++) dst[dstOffset + r * width + i] = floatToHalf(src[s + i]);
    }
  },

  largeBuffer(bytes) {
    return new ArrayBuffer(bytes);
  },

  halfToFloat(src, dst, n) {
    const t = halfTable();
    for (let i = 0; i < n; i++) dst[i] = t[src[i]];
  },

  floatToHalf(src, dst, n) {
    const u = new Uint32Array(src.buffer, src.byteOffset, n);
    for (let i = 0; i < n; i++) dst[i] = floatBitsToHalf(u[i]);
  },

  rmsnorm(out, x, weight, rows, dim, eps) {
    for (let r = 0; r < rows; r++) {
      const off = r * dim;
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += x[off + i] * x[off + i];
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let i = 0; i < dim; i++) out[off + i] = x[off + i] * inv * weight[i];
    }
  },

  rmsnormGrad(dx, dw, dy, x, weight, rows, dim, eps) {
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let ss = 0,
        dot = 0;
      for (let i = 0; i < dim; i++) {
        ss += x[o + i] * x[o + i];
        dot += weight[i] * dy[o + i] * x[o + i];
      }
      const s = 1 / Math.sqrt(ss / dim + eps),
        c = (s * s * s * dot) / dim;
      if (dx) for (let i = 0; i < dim; i++) dx[o + i] += s * weight[i] * dy[o + i] - c * x[o + i];
      if (dw) for (let i = 0; i < dim; i++) dw[i] += dy[o + i] * x[o + i] * s;
    }
  },

  rope(x, rows, heads, headDim, positions, cos, sin) {
    const half = headDim >> 1;
    for (let r = 0; r < rows; r++) {
      const t = positions[r] * half;
      for (let h = 0; h < heads; h++) {
        const off = (r * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const c = cos[t + i],
            s = sin[t + i];
          const x0 = x[off + i],
            x1 = x[off + half + i];
          x[off + i] = x0 * c - x1 * s;
          x[off + half + i] = x1 * c + x0 * s;
        }
      }
    }
  },

  add(out, a, b, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
  },

  siluMul(out, gate, up, n) {
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      out[i] = (g / (1 + Math.exp(-g))) * up[i];
    }
  },

  causalSoftmax(e, inv, rows, n, m, r0) {
    for (let row = 0; row < rows; row++) {
      const o = row * n,
        visible = Math.min(n, r0 + (row % m) + 1);
      let max = -Infinity;
      for (let j = 0; j < visible; j++) if (e[o + j] > max) max = e[o + j];
      let sum = 0;
      for (let j = 0; j < visible; j++) {
        const x = Math.exp(e[o + j] - max);
        e[o + j] = x;
        sum += x;
      }
      for (let j = visible; j < n; j++) e[o + j] = 0;
      inv[row] = 1 / sum;
    }
  },

  causalSoftmaxGrad(dS, e, inv, dd, rows, n, m, r0) {
    for (let row = 0; row < rows; row++) {
      const o = row * n,
        visible = Math.min(n, r0 + (row % m) + 1),
        f = inv[row],
        D = dd[row];
      for (let j = 0; j < visible; j++) dS[o + j] = e[o + j] * f * (dS[o + j] - D);
      for (let j = visible; j < n; j++) dS[o + j] = 0;
    }
  },

  softmaxRowsAccumulate(s, rows, group, width, vis, out) {
    softmaxRows(s, rows, group, width, vis, out, false);
  },

  softmaxRowsMax(s, rows, group, width, vis, out) {
    softmaxRows(s, rows, group, width, vis, out, true);
  },

  crossEntropy(logits, rows, vocab, targets, weights, lse, rowLoss, argmax) {
    for (let r = 0; r < rows; r++) {
      const o = r * vocab;
      let max = -Infinity,
        am = 0;
      for (let j = 0; j < vocab; j++)
        if (logits[o + j] > max) {
          max = logits[o + j];
          am = j;
        }
      argmax[r] = am;
      if (weights[r] === 0) {
        lse[r] = 0;
        rowLoss[r] = 0;
        continue;
      }
      let s = 0;
      for (let j = 0; j < vocab; j++) s += Math.exp(logits[o + j] - max);
      lse[r] = max + Math.log(s);
      rowLoss[r] = lse[r] - logits[o + targets[r]];
    }
  },

  crossEntropyGrad(grad, logits, rows, vocab, targets, lse, coef) {
    for (let r = 0; r < rows; r++) {
      const c = coef[r];
      if (c === 0) continue;
      const o = r * vocab,
        m = lse[r];
      for (let j = 0; j < vocab; j++) grad[o + j] += c * Math.exp(logits[o + j] - m);
      grad[o + targets[r]] -= c;
    }
  },

  siluMulGrad(dGate, dUp, dy, gate, up, n) {
    for (let i = 0; i < n; i++) {
      const g = gate[i],
        sg = 1 / (1 + Math.exp(-g));
      if (dUp) dUp[i] += dy[i] * g * sg;
      // d silu / dg = sg * (1 + g * (1 - sg))
      if (dGate) dGate[i] += dy[i] * up[i] * sg * (1 + g * (1 - sg));
    }
  },

  attendHead(args: AttendArgs) {
    const { q, qRowStride, out, rows, headDim: d, firstHead, group, qPos, kPos, n, scale } = args;
    if (args.keys instanceof Float32Array !== args.values instanceof Float32Array)
      throw new RangeError('attendHead: keys and values must both be Float32Arrays or both Uint16Arrays');
    // an f16 cache is widened whole: the twin is the reference, not the fast path
    const keys = widenRows(args.keys, n * d);
    const values = widenRows(args.values, n * d);
    const scores = new Float32Array(n);
    for (let r = 0; r < rows; r++) {
      const p = qPos[r];
      // keys are sorted by position: the visible ones are a prefix
      let visible = 0;
      while (visible < n && kPos[visible] <= p) visible++;
      for (let g = 0; g < group; g++) {
        const qo = r * qRowStride + (firstHead + g) * d;
        let max = -Infinity;
        for (let j = 0; j < visible; j++) {
          let s = 0;
          const ko = j * d;
          for (let i = 0; i < d; i++) s += q[qo + i] * keys[ko + i];
          s *= scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = 0; j < visible; j++) {
          const e = Math.exp(scores[j] - max);
          scores[j] = e;
          sum += e;
        }
        for (let i = 0; i < d; i++) out[qo + i] = 0;
        if (visible === 0) continue;
        const inv = 1 / sum;
        for (let j = 0; j < visible; j++) {
          const wgt = scores[j] * inv;
          const vo = j * d;
          for (let i = 0; i < d; i++) out[qo + i] += wgt * values[vo + i];
        }
      }
    }
  },
  sgemvParts(k, x, parts, accumulate = false) {
    if (parts.length > 4) throw new RangeError('sgemvParts: at most 4 parts');
    for (const p of parts) jsKernels.sgemv(p.n, k, p.w, x, p.y, accumulate);
  },
  sgemvBatch(rows, n, k, w, x, y, accumulate = false) {
    if (rows > BATCH_GEMV_MAX_ROWS) throw new RangeError(`sgemvBatch: at most ${BATCH_GEMV_MAX_ROWS} rows, got ${rows}`);
    sgemvRowByRow(jsKernels.sgemv, rows, n, k, w, x, y, accumulate);
  },
};

/** sgemvBatch as one sgemv per row (the twin, and the native kernels on an addon without the batched products). */
export function sgemvRowByRow(
  sgemv: Kernels['sgemv'],
  rows: number,
  n: number,
  k: number,
  w: MatrixWeights,
  x: Float32Array,
  y: Float32Array,
  accumulate: boolean,
): void {
  for (let r = 0; r < rows; r++) sgemv(n, k, w, x.subarray(r * k, (r + 1) * k), y.subarray(r * n, (r + 1) * n), accumulate);
}

/** sgemmPackedParts as one `sgemmPacked` call per part (the twin, and the native kernels on an addon without it). */
export function sgemmPackedByPart(
  sgemmPacked: Kernels['sgemmPacked'],
  ...[m, k, x, ldx, packed, parts, accumulate]: Parameters<Kernels['sgemmPackedParts']>
): void {
  if (parts.length > 4) throw new RangeError('sgemmPackedParts: at most 4 parts');
  let offset = 0;
  for (const p of parts) {
    sgemmPacked(m, p.n, k, x, ldx, packed.subarray(offset), p.y, p.n, accumulate);
    offset += packedWeightFloats(p.n, k);
  }
}

/** Each row's softmax over its first vis[r] scores, added into out (or kept where larger, with takeMax). */
function softmaxRows(
  s: Float32Array,
  rows: number,
  group: number,
  width: number,
  vis: Int32Array,
  out: Float32Array,
  takeMax: boolean,
): void {
  for (let r = 0; r < rows; r++) {
    const v = Math.min(vis[r], width);
    if (v <= 0) continue;
    for (let g = 0; g < group; g++) {
      const o = (r * group + g) * width;
      let max = -Infinity;
      for (let j = 0; j < v; j++) if (s[o + j] > max) max = s[o + j];
      let sum = 0;
      for (let j = 0; j < v; j++) sum += s[o + j] = expNonPositive(s[o + j] - max);
      const inv = 1 / sum;
      for (let j = 0; j < v; j++) {
        const p = s[o + j] * inv;
        if (!takeMax) out[g * width + j] += p;
        else if (p > out[g * width + j]) out[g * width + j] = p;
      }
    }
  }
}

/** The first n values of cache rows as float32: the array itself, or halves widened. */
function widenRows(rows: CacheRows, n: number): Float32Array {
  if (rows instanceof Float32Array) return rows;
  const t = halfTable();
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = t[rows[i]];
  return out;
}
