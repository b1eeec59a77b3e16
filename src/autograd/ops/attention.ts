import { kernels } from '../../kernels/index.js';
import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';
import { fastExp } from '../fast-exp.js';

/** One sequence of a packed batch: rows start .. start + length - 1, causal among themselves. */
export interface SequenceSpan {
  start: number;
  length: number;
}

export interface AttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** usually 1 / sqrt(headDim) */
  scale: number;
}

/** Query rows per block: the score block is [BLOCK, keys so far], so the causal upper triangle is mostly skipped. */
const BLOCK = 128;

/**
 * Causal softmax attention with grouped-query heads over packed sequences.
 * q: [rows, heads * headDim], k and v: [rows, kvHeads * headDim], all after RoPE; out: [rows, heads * headDim].
 * Query head h reads KV head floor(h / (heads / kvHeads)). Scores are computed block by block with sgemm and
 * recomputed in the backward pass from the saved log-sum-exp, so memory stays O(rows) per head.
 */
export function attention(tape: Tape | null, q: Tensor, k: Tensor, v: Tensor, spans: readonly SequenceSpan[], shape: AttentionShape): Tensor {
  const { heads, kvHeads, headDim: d, scale } = shape;
  const group = heads / kvHeads;
  const qs = heads * d, ks = kvHeads * d;
  const rows = q.size / qs;
  const kern = kernels();
  const out = new Tensor(new Float32Array(rows * qs), [rows, qs], q.requiresGrad || k.requiresGrad || v.requiresGrad);
  const lse = new Float32Array(rows * heads);
  let maxLen = 0;
  for (const s of spans) maxLen = Math.max(maxLen, s.length);
  const sBuf = new Float32Array(Math.min(BLOCK, maxLen) * maxLen);

  for (const span of spans) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      for (let r0 = 0; r0 < span.length; r0 += BLOCK) {
        const r1 = Math.min(span.length, r0 + BLOCK), m = r1 - r0, n = r1;
        const qOff = (span.start + r0) * qs + h * d, kOff = span.start * ks + g * d;
        kern.sgemm(false, true, m, n, d, scale, q.data.subarray(qOff), qs, k.data.subarray(kOff), ks, 0, sBuf, n);
        for (let i = 0; i < m; i++) {
          const o = i * n, visible = r0 + i + 1;
          let max = -Infinity;
          for (let j = 0; j < visible; j++) if (sBuf[o + j] > max) max = sBuf[o + j];
          let sum = 0;
          for (let j = 0; j < visible; j++) {
            const e = fastExp(sBuf[o + j] - max);
            sBuf[o + j] = e;
            sum += e;
          }
          const inv = 1 / sum;
          for (let j = 0; j < visible; j++) sBuf[o + j] *= inv;
          for (let j = visible; j < n; j++) sBuf[o + j] = 0;
          lse[(span.start + r0 + i) * heads + h] = max + Math.log(sum);
        }
        kern.sgemm(false, false, m, d, n, 1, sBuf, n, v.data.subarray(kOff), ks, 0, out.data.subarray(qOff), qs);
      }
    }
  }

  if (tape && out.requiresGrad) {
    tape.record(() => {
      const dO = out.grad;
      if (dO === null) return;
      const dq = q.requiresGrad ? q.gradBuf() : null;
      const dk = k.requiresGrad ? k.gradBuf() : null;
      const dv = v.requiresGrad ? v.gradBuf() : null;
      const pBuf = new Float32Array(sBuf.length);
      const dBuf = new Float32Array(sBuf.length);
      for (const span of spans) {
        for (let h = 0; h < heads; h++) {
          const g = Math.floor(h / group);
          for (let r0 = 0; r0 < span.length; r0 += BLOCK) {
            const r1 = Math.min(span.length, r0 + BLOCK), m = r1 - r0, n = r1;
            const qOff = (span.start + r0) * qs + h * d, kOff = span.start * ks + g * d;
            // recompute P from the saved log-sum-exp
            kern.sgemm(false, true, m, n, d, scale, q.data.subarray(qOff), qs, k.data.subarray(kOff), ks, 0, pBuf, n);
            for (let i = 0; i < m; i++) {
              const o = i * n, visible = r0 + i + 1, l = lse[(span.start + r0 + i) * heads + h];
              for (let j = 0; j < visible; j++) pBuf[o + j] = fastExp(pBuf[o + j] - l);
              for (let j = visible; j < n; j++) pBuf[o + j] = 0;
            }
            if (dv) kern.sgemm(true, false, n, d, m, 1, pBuf, n, dO.subarray(qOff), qs, 1, dv.subarray(kOff), ks);
            if (!dq && !dk) continue;
            // dP = dO . V^T ; dS = P * (dP - rowsum(dO * O))
            kern.sgemm(false, true, m, n, d, 1, dO.subarray(qOff), qs, v.data.subarray(kOff), ks, 0, dBuf, n);
            for (let i = 0; i < m; i++) {
              const o = i * n, visible = r0 + i + 1, ro = qOff + i * qs;
              let dd = 0;
              for (let c = 0; c < d; c++) dd += dO[ro + c] * out.data[ro + c];
              for (let j = 0; j < visible; j++) dBuf[o + j] = pBuf[o + j] * (dBuf[o + j] - dd);
              for (let j = visible; j < n; j++) dBuf[o + j] = 0;
            }
            if (dq) kern.sgemm(false, false, m, d, n, scale, dBuf, n, k.data.subarray(kOff), ks, 1, dq.subarray(qOff), qs);
            if (dk) kern.sgemm(true, false, n, d, m, scale, dBuf, n, q.data.subarray(qOff), qs, 1, dk.subarray(kOff), ks);
          }
        }
      }
    });
  }
  return out;
}
