import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';

/** y = s * x for a constant s (LoRA's alpha / rank). */
export function scale(tape: Tape | null, x: Tensor, s: number): Tensor {
  const n = x.size;
  const y = Tensor.output(x.shape, x.requiresGrad);
  for (let i = 0; i < n; i++) y.data[i] = s * x.data[i];
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      const g = x.gradBuf();
      for (let i = 0; i < n; i++) g[i] += s * dy[i];
    });
  }
  return y;
}
