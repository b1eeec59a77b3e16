import { kernels } from '../../kernels/index.js';
import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';

/**
 * y[rows, out] = x[rows, in] . W[out, in]^T (a linear layer, weights stored [out, in] as Hugging Face does).
 * W may be trainable or frozen; x may be a leaf (soft tokens) or an activation.
 */
export function linear(tape: Tape | null, x: Tensor, w: Tensor): Tensor {
  const [out, inDim] = w.shape;
  const rows = x.size / inDim;
  const k = kernels();
  const y = Tensor.output([rows, out], x.requiresGrad || w.requiresGrad);
  k.sgemm(false, true, rows, out, inDim, 1, x.data, inDim, w.data, inDim, 0, y.data, out);
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      // dx = dy . W ; dW = dy^T . x
      if (x.requiresGrad) k.sgemm(false, false, rows, inDim, out, 1, dy, out, w.data, inDim, 1, x.gradBuf(), inDim);
      if (w.requiresGrad) k.sgemm(true, false, out, inDim, rows, 1, dy, out, x.data, inDim, 1, w.gradBuf(), inDim);
    });
  }
  return y;
}
