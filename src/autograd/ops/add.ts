import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';
import { kernels } from '../../kernels/index.js';

/** y = a + b (same shape): the residual connection. */
export function add(tape: Tape | null, a: Tensor, b: Tensor): Tensor {
  const n = a.size;
  const y = Tensor.output(a.shape, a.requiresGrad || b.requiresGrad);
  const k = kernels();
  k.add(y.data, a.data, b.data, n);
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      for (const t of [a, b]) {
        if (!t.requiresGrad) continue;
        const g = t.gradBuf();
        k.add(g, g, dy, n);
      }
    });
  }
  return y;
}
