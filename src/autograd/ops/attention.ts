import { kernels } from '../../kernels/index.js';
import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';
import { buffer } from '../buffers.js';

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

/** Query rows per block: the score block is [group * BLOCK, keys so far], so the causal upper triangle is mostly skipped. */
const BLOCK = 128;

/** One score block: query rows row .. row + m - 1 (block r0 of its span) of the heads reading KV head g, against n keys. */
interface Block {
  row: number;
  g: number;
  kOff: number;
  r0: number;
  m: number;
  n: number;
  gm: number;
}

/** The blocks of every span and KV head, in the order the forward runs them (the backward reads its saves by index). */
function blocksOf(spans: readonly SequenceSpan[], kvHeads: number, group: number, d: number, ks: number): Block[] {
  const out: Block[] = [];
  for (const span of spans)
    for (let g = 0; g < kvHeads; g++)
      for (let r0 = 0; r0 < span.length; r0 += BLOCK) {
        const m = Math.min(span.length, r0 + BLOCK) - r0;
        out.push({ row: span.start + r0, g, kOff: span.start * ks + g * d, r0, m, n: r0 + m, gm: group * m });
      }
  return out;
}

/**
 * Causal softmax attention with grouped-query heads over packed sequences.
 * q: [rows, heads * headDim], k and v: [rows, kvHeads * headDim], all after RoPE; out: [rows, heads * headDim].
 * Query head h reads KV head floor(h / (heads / kvHeads)). The query heads of one group are stacked into
 * one [group * block, headDim] matrix so each score block is a single sgemm against the shared keys.
 * The forward keeps the unnormalised probabilities of each block (about rows^2 / 2 floats per head) and
 * the row sums, so the backward needs no recomputation.
 */
export function attention(
  tape: Tape | null,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  spans: readonly SequenceSpan[],
  shape: AttentionShape,
): Tensor {
  const { heads, kvHeads, headDim: d, scale } = shape;
  const group = heads / kvHeads;
  const qs = heads * d,
    ks = kvHeads * d;
  const rows = q.size / qs;
  const kern = kernels();
  const needGrad = q.requiresGrad || k.requiresGrad || v.requiresGrad;
  const keep = tape !== null && needGrad;
  const out = Tensor.output([rows, qs], needGrad);
  let maxLen = 0;
  for (const s of spans) maxLen = Math.max(maxLen, s.length);
  const blockRows = group * Math.min(BLOCK, maxLen);
  const qBuf = new Float32Array(blockRows * d);
  const oBuf = new Float32Array(blockRows * d);
  const scratch = keep ? null : buffer(blockRows * maxLen);
  /** per (span, kv head, block): exp(s - rowmax) [group * m, n] and 1 / rowsum [group * m] */
  const saved: { e: Float32Array; inv: Float32Array }[] = [];

  const gather = (dst: Float32Array, src: Float32Array, base: number, g: number, m: number, mul: Float32Array | null) => {
    for (let t = 0; t < group; t++) {
      const col = (g * group + t) * d;
      for (let i = 0; i < m; i++) {
        const so = (base + i) * qs + col,
          doff = (t * m + i) * d;
        if (mul) {
          const f = mul[t * m + i];
          for (let c = 0; c < d; c++) dst[doff + c] = src[so + c] * f;
        } else for (let c = 0; c < d; c++) dst[doff + c] = src[so + c];
      }
    }
  };

  const blocks = blocksOf(spans, kvHeads, group, d, ks);
  for (const { row, g, kOff, r0, m, n, gm } of blocks) {
    gather(qBuf, q.data, row, g, m, null);
    const e = scratch ?? buffer(gm * n);
    const inv = new Float32Array(gm);
    kern.sgemm(false, true, gm, n, d, scale, qBuf, d, k.data.subarray(kOff), ks, 0, e, n);
    kern.causalSoftmax(e, inv, gm, n, m, r0);
    kern.sgemm(false, false, gm, d, n, 1, e, n, v.data.subarray(kOff), ks, 0, oBuf, d);
    for (let t = 0; t < group; t++) {
      const col = (g * group + t) * d;
      for (let i = 0; i < m; i++) {
        const f = inv[t * m + i],
          so = (t * m + i) * d,
          oo = (row + i) * qs + col;
        for (let c = 0; c < d; c++) out.data[oo + c] = oBuf[so + c] * f;
      }
    }
    if (keep) saved.push({ e, inv });
  }

  if (keep) {
    tape.record(() => {
      const dO = out.grad;
      if (dO === null) return;
      const dq = q.requiresGrad ? q.gradBuf() : null;
      const dk = k.requiresGrad ? k.gradBuf() : null;
      const dv = v.requiresGrad ? v.gradBuf() : null;
      const dOBuf = new Float32Array(blockRows * d);
      const dOScaled = new Float32Array(blockRows * d);
      const dqBuf = new Float32Array(blockRows * d);
      const dS = buffer(blockRows * maxLen);
      const dd = new Float32Array(blockRows);
      blocks.forEach(({ row, g, kOff, r0, m, n, gm }, b) => {
        const { e, inv } = saved[b];
        gather(dOBuf, dO, row, g, m, null);
        // P = e * inv (row-wise); dV += P^T dO = e^T (inv * dO)
        gather(dOScaled, dO, row, g, m, inv);
        if (dv) kern.sgemm(true, false, n, d, gm, 1, e, n, dOScaled, d, 1, dv.subarray(kOff), ks);
        if (!dq && !dk) return;
        // D_row = dO . O ; dS = P * (dO V^T - D)
        for (let t = 0; t < group; t++) {
          const col = (g * group + t) * d;
          for (let i = 0; i < m; i++) {
            const ro = (row + i) * qs + col;
            let s = 0;
            for (let c = 0; c < d; c++) s += dO[ro + c] * out.data[ro + c];
            dd[t * m + i] = s;
          }
        }
        kern.sgemm(false, true, gm, n, d, 1, dOBuf, d, v.data.subarray(kOff), ks, 0, dS, n);
        kern.causalSoftmaxGrad(dS, e, inv, dd, gm, n, m, r0);
        if (dk) {
          gather(qBuf, q.data, row, g, m, null);
          kern.sgemm(true, false, n, d, gm, scale, dS, n, qBuf, d, 1, dk.subarray(kOff), ks);
        }
        if (dq) {
          kern.sgemm(false, false, gm, d, n, scale, dS, n, k.data.subarray(kOff), ks, 0, dqBuf, d);
          for (let t = 0; t < group; t++) {
            const col = (g * group + t) * d;
            for (let i = 0; i < m; i++) {
              const so = (t * m + i) * d,
                qo = (row + i) * qs + col;
              for (let c = 0; c < d; c++) dq[qo + c] += dqBuf[so + c];
            }
          }
        }
      });
      saved.length = 0;
    });
  }
  return out;
}
