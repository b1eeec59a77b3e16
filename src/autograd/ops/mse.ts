import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';

/** Mean squared error mean((a - b)^2) over all elements; both sides may carry gradients. */
export function mse(tape: Tape | null, a: Tensor, b: Tensor): Tensor {
  const n = a.size;
  if (b.size !== n) throw new Error(`internal error: mse of ${n} and ${b.size} values`);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const d = a.data[i] - b.data[i];
    s += d * d;
  }
  const loss = new Tensor(new Float32Array([s / n]), [1], a.requiresGrad || b.requiresGrad);
  if (tape && loss.requiresGrad) {
    tape.record(() => {
      const dl = loss.grad;
      if (dl === null) return;
      const c = (2 * dl[0]) / n;
      const ga = a.requiresGrad ? a.gradBuf() : null;
      const gb = b.requiresGrad ? b.gradBuf() : null;
      for (let i = 0; i < n; i++) {
        const d = c * (a.data[i] - b.data[i]);
        if (ga) ga[i] += d;
        if (gb) gb[i] -= d;
      }
    });
  }
  return loss;
}
