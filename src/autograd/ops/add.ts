import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';

/** y = a + b (same shape): the residual connection. */
export function add(tape: Tape | null, a: Tensor, b: Tensor): Tensor {
  const n = a.size;
  const y = Tensor.output(a.shape, a.requiresGrad || b.requiresGrad);
  const ad = a.data, bd = b.data, yd = y.data;
  for (let i = 0; i < n; i++) yd[i] = ad[i] + bd[i];
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      for (const t of [a, b]) {
        if (!t.requiresGrad) continue;
        const g = t.gradBuf();
        for (let i = 0; i < n; i++) g[i] += dy[i];
      }
    });
  }
  return y;
}
