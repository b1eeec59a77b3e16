import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';
import { kernels } from '../../kernels/index.js';

/** y = silu(gate) * up, elementwise (the SwiGLU of a Llama MLP). */
export function swiglu(tape: Tape | null, gate: Tensor, up: Tensor): Tensor {
  const n = gate.size;
  const g = gate.data,
    u = up.data;
  const y = Tensor.output(gate.shape, gate.requiresGrad || up.requiresGrad);
  const yd = y.data;
  kernels().siluMul(yd, g, u, n);
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      const dg = gate.requiresGrad ? gate.gradBuf() : null;
      const du = up.requiresGrad ? up.gradBuf() : null;
      kernels().siluMulGrad(dg, du, dy, g, u, n);
    });
  }
  return y;
}
