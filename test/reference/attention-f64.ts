import type { ModelConfig } from '../../src/model/config.js';
import type { AttendArgs } from '../../src/kernels/types.js';

/** Attention by the definition: every (row, head) scores every key, masks by position, softmax, weighted sum. */
export function attend64(a: AttendArgs): Float64Array {
  const out = Float64Array.from(a.out);
  const d = a.headDim;
  for (let r = 0; r < a.rows; r++) {
    for (let g = 0; g < a.group; g++) {
      const qo = r * a.qRowStride + (a.firstHead + g) * d;
      const w = new Float64Array(a.n);
      let max = -Infinity;
      for (let j = 0; j < a.n; j++) {
        if (a.kPos[j] > a.qPos[r]) {
          w[j] = -Infinity;
          continue;
        }
        let s = 0;
        for (let i = 0; i < d; i++) s += a.q[qo + i] * a.keys[j * d + i];
        w[j] = s * a.scale;
        max = Math.max(max, w[j]);
      }
      let sum = 0;
      for (let j = 0; j < a.n; j++) {
        w[j] = w[j] === -Infinity ? 0 : Math.exp(w[j] - max);
        sum += w[j];
      }
      for (let i = 0; i < d; i++) {
        let acc = 0;
        for (let j = 0; j < a.n; j++) acc += w[j] * a.values[j * d + i];
        out[qo + i] = sum === 0 ? 0 : acc / sum;
      }
    }
  }
  return out;
}

/** Rows' mean softmax attention on the first L keys, per layer [H][L], from float64 queries and keys. */
export function meanPromptAttention64(cfg: ModelConfig, q: Float64Array[][], k: Float64Array[][], rows: number[], L: number): number[][][] {
  const { numHeads: H, numKvHeads: Hkv, headDim: d } = cfg;
  const G = H / Hkv;
  return q.map((ql, l) =>
    Array.from({ length: H }, (_, h) => {
      const g = Math.floor(h / G);
      const mean = new Array<number>(L).fill(0);
      for (const r of rows) {
        const logits: number[] = [];
        for (let j = 0; j <= r; j++) {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += ql[r][h * d + i] * k[l][j][g * d + i];
          logits.push(dot / Math.sqrt(d));
        }
        const mx = Math.max(...logits);
        const e = logits.map((x) => Math.exp(x - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j < L; j++) mean[j] += e[j] / z / rows.length;
      }
      return mean;
    }),
  );
}
