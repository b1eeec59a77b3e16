import { Tape } from '../tape.js';
import { Tensor } from '../tensor.js';
import { buffer } from '../buffers.js';
import { kernels } from '../../kernels/index.js';

/** -sin tables, for the inverse rotation with the same kernel. */
const negatedSin = new WeakMap<Float32Array, Float32Array>();

function negSin(sin: Float32Array): Float32Array {
  let t = negatedSin.get(sin);
  if (!t) {
    t = sin.map((v) => -v);
    negatedSin.set(sin, t);
  }
  return t;
}

/**
 * Rotary position embedding, half-split layout (Hugging Face rotate_half), on x[rows, heads * headDim].
 * Row r is rotated by the angles of position positions[r] (tables [positions, headDim / 2]).
 * The backward rule is the inverse rotation (the map is orthogonal).
 */
export function rope(
  tape: Tape | null,
  x: Tensor,
  heads: number,
  headDim: number,
  positions: Int32Array,
  cos: Float32Array,
  sin: Float32Array,
): Tensor {
  const rows = positions.length;
  const y = Tensor.output(x.shape, x.requiresGrad);
  y.data.set(x.data);
  kernels().rope(y.data, rows, heads, headDim, positions, cos, sin);
  if (tape && y.requiresGrad) {
    tape.record(() => {
      const dy = y.grad;
      if (dy === null) return;
      const t = buffer(dy.length);
      t.set(dy);
      kernels().rope(t, rows, heads, headDim, positions, cos, negSin(sin));
      const dx = x.gradBuf();
      kernels().add(dx, dx, t, t.length);
    });
  }
  return y;
}
