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
