import { kernels } from '../../kernels/index.js';
import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';
import type { AttentionShape } from './attention.js';

/** The constant keys and values of one KV head before the new rows: compact [n, headDim] rows. */
export interface PrefixHead {
  keys: Float32Array;
  values: Float32Array;
  n: number;
}

export interface PrefixAttentionResult {
  /** [rows, heads * headDim]: attention output of the new rows */
  out: Tensor;
  /** [heads, prefix]: per query head, the new rows' mean attention probability on each prefix key */
  prefixMean: Tensor;
}

/**
 * Attention of `rows` new query rows over a constant prefix (a prompt's cached keys and values, which need no
 * gradient) followed by the rows' own keys and values, causal among the new rows. Every prefix key is visible
 * to every new row. q: [rows, heads * headDim], k and v: [rows, kvHeads * headDim], all after RoPE.
 *
 * Besides the output it returns, per query head, the new rows' attention probabilities restricted to the
 * prefix columns and averaged over the rows (the softmax runs over prefix and new keys). Both outputs carry
 * gradients back to q, k and v; the prefix is never differentiated, so the cost is O(rows x prefix).
 * Probabilities are kept for the backward pass: heads x rows x (prefix + rows) floats.
 */
export function prefixAttention(
  tape: Tape | null,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  prefix: readonly PrefixHead[],
  shape: AttentionShape,
): PrefixAttentionResult {
  const { heads, kvHeads, headDim: d, scale } = shape;
  if (prefix.length !== kvHeads) throw new Error(`internal error: ${prefix.length} prefix heads for ${kvHeads} KV heads`);
  const n = prefix[0].n;
  for (const p of prefix) if (p.n !== n) throw new Error('internal error: prefix heads of different lengths');
  const group = heads / kvHeads;
  const qs = heads * d,
    ks = kvHeads * d;
  const rows = q.size / qs;
  const cols = n + rows;
  const kern = kernels();
  const needGrad = q.requiresGrad || k.requiresGrad || v.requiresGrad;
  const out = new Tensor(new Float32Array(rows * qs), [rows, qs], needGrad);
  const prefixMean = new Tensor(new Float32Array(heads * n), [heads, n], needGrad);
  // probabilities [heads][rows, cols]: prefix columns first, then the new rows' columns
  const probs = new Float32Array(heads * rows * cols);
  const inv = 1 / rows;
  const rowInv = new Float32Array(rows);

  /** query head h's probabilities, its prefix and its slices of q, k and v */
  const head = (h: number) => {
    const g = Math.floor(h / group);
    const P = probs.subarray(h * rows * cols, (h + 1) * rows * cols);
    return { g, pre: prefix[g], P, qh: q.data.subarray(h * d), kh: k.data.subarray(g * d), vh: v.data.subarray(g * d) };
  };

  for (let h = 0; h < heads; h++) {
    const { pre, P, qh, kh, vh } = head(h);
    if (n > 0) kern.sgemm(false, true, rows, n, d, scale, qh, qs, pre.keys, d, 0, P, cols);
    kern.sgemm(false, true, rows, rows, d, scale, qh, qs, kh, ks, 0, P.subarray(n), cols);
    const mean = prefixMean.data.subarray(h * n, (h + 1) * n);
    // row i sees the prefix and new rows 0 .. i: the kernels' causal softmax with the block starting at row n
    kern.causalSoftmax(P, rowInv, rows, cols, rows, n);
    for (let i = 0; i < rows; i++) {
      const o = i * cols,
        visible = n + i + 1,
        s = rowInv[i];
      for (let j = 0; j < visible; j++) P[o + j] *= s;
      for (let j = 0; j < n; j++) mean[j] += P[o + j] * inv;
    }
    const oh = out.data.subarray(h * d);
    if (n > 0) kern.sgemm(false, false, rows, d, n, 1, P, cols, pre.values, d, 0, oh, qs);
    kern.sgemm(false, false, rows, d, rows, 1, P.subarray(n), cols, vh, ks, n > 0 ? 1 : 0, oh, qs);
  }

  if (tape && needGrad) {
    tape.record(() => {
      const dO = out.grad,
        dM = prefixMean.grad;
      if (dO === null && dM === null) return;
      const dq = q.requiresGrad ? q.gradBuf() : null;
      const dk = k.requiresGrad ? k.gradBuf() : null;
      const dv = v.requiresGrad ? v.gradBuf() : null;
      const dS = new Float32Array(rows * cols);
      for (let h = 0; h < heads; h++) {
        const { g, pre, P, qh, kh, vh } = head(h);
        // dP = dO . [Vprefix; Vrows]^T + dMean / rows on the prefix columns
        dS.fill(0);
        if (dO) {
          const dOh = dO.subarray(h * d);
          if (n > 0) kern.sgemm(false, true, rows, n, d, 1, dOh, qs, pre.values, d, 0, dS, cols);
          kern.sgemm(false, true, rows, rows, d, 1, dOh, qs, vh, ks, 0, dS.subarray(n), cols);
          if (dv) kern.sgemm(true, false, rows, d, rows, 1, P.subarray(n), cols, dOh, qs, 1, dv.subarray(g * d), ks);
        }
        if (dM) {
          const m = dM.subarray(h * n, (h + 1) * n);
          for (let i = 0; i < rows; i++) {
            const o = i * cols;
            for (let j = 0; j < n; j++) dS[o + j] += m[j] * inv;
          }
        }
        // dS = P * (dP - rowsum(P * dP))
        for (let i = 0; i < rows; i++) {
          const o = i * cols,
            visible = n + i + 1;
          let dot = 0;
          for (let j = 0; j < visible; j++) dot += P[o + j] * dS[o + j];
          for (let j = 0; j < visible; j++) dS[o + j] = P[o + j] * (dS[o + j] - dot);
          for (let j = visible; j < cols; j++) dS[o + j] = 0;
        }
        if (dq) {
          const dqh = dq.subarray(h * d);
          if (n > 0) kern.sgemm(false, false, rows, d, n, scale, dS, cols, pre.keys, d, 1, dqh, qs);
          kern.sgemm(false, false, rows, d, rows, scale, dS.subarray(n), cols, kh, ks, 1, dqh, qs);
        }
        if (dk) kern.sgemm(true, false, rows, d, rows, scale, dS.subarray(n), cols, qh, qs, 1, dk.subarray(g * d), ks);
      }
    });
  }
  return { out, prefixMean };
}
