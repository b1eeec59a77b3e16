import { assert } from '../../errors.js';
import { kernels } from '../../kernels/index.js';
import { ropeInvFreq } from '../../model/config.js';
import { reduceHeads, type GqaReduce } from '../gqa.js';
import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';

/** How many future positions the RoPE rotation is averaged over (kvpress n_future_positions). */
export const FUTURE_POSITIONS = 512;

/**
 * The mean rotation of RoPE over positions `from .. from + count - 1`: per frequency i, the means of cos and
 * sin. Applied as (R x)_i = c_i x_i - s_i x_{i+d/2}, (R x)_{i+d/2} = s_i x_i + c_i x_{i+d/2}.
 */
export function meanRotation(invFreq: Float64Array, from: number, count: number): { c: Float64Array; s: Float64Array } {
  const half = invFreq.length;
  const c = new Float64Array(half);
  const s = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    let cs = 0,
      ss = 0;
    for (let p = from; p < from + count; p++) {
      cs += Math.cos(p * invFreq[i]);
      ss += Math.sin(p * invFreq[i]);
    }
    c[i] = cs / count;
    s[i] = ss / count;
  }
  return { c, s };
}

/** y = R x for the mean rotation (c, s): two entries per row, so O(d). */
function rotate(
  c: Float64Array,
  s: Float64Array,
  x: Float64Array,
  xOff: number,
  stride: number,
  y: Float64Array,
  yOff: number,
  yStride: number,
): void {
  const half = c.length;
  for (let i = 0; i < half; i++) {
    const a = x[xOff + i * stride],
      b = x[xOff + (i + half) * stride];
    y[yOff + i * yStride] = c[i] * a - s[i] * b;
    y[yOff + (i + half) * yStride] = s[i] * a + c[i] * b;
  }
}

/**
 * Expected Attention (kvpress): from the mean `mu` and covariance `S` of the pre-RoPE prompt queries (sinks
 * excluded), rotated by RoPE averaged over the next 512 positions, each key scores
 * softmax_j(k_j . mu' / sqrt(d) + k_j^T S' k_j / (2d)), reduced over the GQA group, times ||v_j||.
 * The first `sinks` entries are always kept.
 */
export class ExpectedAttentionScorer implements Scorer {
  readonly name = 'expected-attention';
  readonly window = 0;

  constructor(
    readonly sinks: number,
    readonly gqa: GqaReduce,
  ) {}

  capture(): CaptureRequest {
    return { queryStats: { sinks: this.sinks } };
  }

  score(run: PrefillRun): HeadScores {
    const stats = run.captured.queryStats;
    assert(stats !== null, 'query statistics were recorded');
    const cfg = run.model.config;
    const { numHeads: H, numKvHeads: Hkv, headDim: d } = cfg;
    const G = H / Hkv;
    const k = kernels();
    const { c, s } = meanRotation(ropeInvFreq(cfg), run.startPosition + run.promptLength, FUTURE_POSITIONS);
    const muRot = new Float64Array(d);
    const covRot = new Float32Array(d * d);
    const tmp = new Float64Array(d * d);
    const tmp2 = new Float64Array(d * d);
    return stats.map((st, l) => {
      const N = Math.max(1, st.count);
      const heads: Float64Array[] = [];
      for (let h = 0; h < Hkv; h++) {
        const head = run.cache.head(l, h);
        const n = head.length;
        const first = Math.min(this.sinks, n);
        const m = n - first;
        const keys = head.keyRows(first, m);
        const kS = new Float32Array(Math.max(1, m * d));
        const perQuery: Float64Array[] = [];
        for (let g = 0; g < G; g++) {
          const qh = h * G + g;
          // mu and S of this query head, then mu' = R mu and S' = R S R^T
          const mu = new Float64Array(d);
          for (let i = 0; i < d; i++) mu[i] = st.sum[qh * d + i] / N;
          rotate(c, s, mu, 0, 1, muRot, 0, 1);
          const cov = new Float64Array(d * d);
          for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) cov[i * d + j] = st.outer[qh * d * d + i * d + j] / N - mu[i] * mu[j];
          // S' = R S R^T: rotate every column (R S), then every row ((R S) R^T)
          for (let j = 0; j < d; j++) rotate(c, s, cov, j, d, tmp, j, d);
          for (let i = 0; i < d; i++) rotate(c, s, tmp, i * d, 1, tmp2, i * d, 1);
          for (let i = 0; i < d * d; i++) covRot[i] = tmp2[i];
          // k^T S' k for every key through one product K . S'
          if (m > 0) k.sgemm(false, false, m, d, d, 1, keys, d, covRot, d, 0, kS, d);
          const z = new Float64Array(m);
          let max = -Infinity;
          for (let j = 0; j < m; j++) {
            let lin = 0,
              quad = 0;
            for (let i = 0; i < d; i++) {
              const kv = keys[j * d + i];
              lin += kv * muRot[i];
              quad += kv * kS[j * d + i];
            }
            z[j] = lin / Math.sqrt(d) + quad / (2 * d);
            if (z[j] > max) max = z[j];
          }
          let sum = 0;
          for (let j = 0; j < m; j++) {
            z[j] = Math.exp(z[j] - max);
            sum += z[j];
          }
          for (let j = 0; j < m; j++) z[j] /= sum;
          perQuery.push(z);
        }
        const reduced = reduceHeads(perQuery, this.gqa);
        const out = new Float64Array(n);
        for (let j = 0; j < first; j++) out[j] = Infinity;
        const values = head.valueRows(first, m);
        for (let j = 0; j < m; j++) {
          let vn = 0;
          for (let i = 0; i < d; i++) vn += values[j * d + i] ** 2;
          out[first + j] = reduced[j] * Math.sqrt(vn);
        }
        heads.push(out);
      }
      return heads;
    });
  }
}
