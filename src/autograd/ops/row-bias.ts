import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';

/** y[r, i] = x[r, i] + b[i]: a bias added to every row (Qwen2's q/k/v biases). */
export function addRowBias(tape: Tape | null, x: Tensor, b: Tensor): Tensor {
  const dim = b.size;
  const rows = x.size / dim;
  const y = Tensor.output(x.shape, x.requiresGrad || b.requiresGrad);
  const xd = x.data,
    bd = b.data,
    yd = y.data;
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    for (let i = 0; i < dim; i++) yd[o + i] = xd[o + i] + bd[i];
  }
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      if (x.requiresGrad) {
        const g = x.gradBuf();
        for (let i = 0; i < dy.length; i++) g[i] += dy[i];
      }
      if (b.requiresGrad) {
        const g = b.gradBuf();
        for (let r = 0; r < rows; r++) for (let i = 0; i < dim; i++) g[i] += dy[r * dim + i];
      }
    });
  }
  return y;
}
