import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';
import { kernels } from '../../kernels/index.js';

/** y = x / rms(x) * w over the last dimension (rows of `dim`), as Llama's RMSNorm. */
export function rmsnorm(tape: Tape | null, x: Tensor, w: Tensor, eps: number): Tensor {
  const dim = w.size;
  const rows = x.size / dim;
  const y = Tensor.output(x.shape, x.requiresGrad || w.requiresGrad);
  const k = kernels();
  k.rmsnorm(y.data, x.data, w.data, rows, dim, eps);
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      k.rmsnormGrad(x.requiresGrad ? x.gradBuf() : null, w.requiresGrad ? w.gradBuf() : null, dy, x.data, w.data, rows, dim, eps);
    });
  }
  return y;
}
