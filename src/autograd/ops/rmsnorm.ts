import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';

/** y = x / rms(x) * w over the last dimension (rows of `dim`), as Llama's RMSNorm. */
export function rmsnorm(tape: Tape | null, x: Tensor, w: Tensor, eps: number): Tensor {
  const dim = w.size;
  const rows = x.size / dim;
  const xd = x.data, wd = w.data;
  const inv = new Float32Array(rows);
  const y = Tensor.output(x.shape, x.requiresGrad || w.requiresGrad);
  const yd = y.data;
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += xd[o + i] * xd[o + i];
    const s = 1 / Math.sqrt(ss / dim + eps);
    inv[r] = s;
    for (let i = 0; i < dim; i++) yd[o + i] = xd[o + i] * s * wd[i];
  }
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      const dx = x.requiresGrad ? x.gradBuf() : null;
      const dw = w.requiresGrad ? w.gradBuf() : null;
      for (let r = 0; r < rows; r++) {
        const o = r * dim, s = inv[r];
        // dx_i = s * w_i dy_i - s^3 / dim * x_i * sum_j w_j dy_j x_j
        let dot = 0;
        for (let i = 0; i < dim; i++) dot += wd[i] * dy[o + i] * xd[o + i];
        const c = (s * s * s * dot) / dim;
        if (dx) for (let i = 0; i < dim; i++) dx[o + i] += s * wd[i] * dy[o + i] - c * xd[o + i];
        if (dw) for (let i = 0; i < dim; i++) dw[i] += dy[o + i] * xd[o + i] * s;
      }
    });
  }
  return y;
}
