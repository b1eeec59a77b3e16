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

/** In-place rotation by +angle (sign 1) or -angle (sign -1). */
export function rotate(
  x: Float32Array,
  rows: number,
  heads: number,
  headDim: number,
  positions: Int32Array,
  cos: Float32Array,
  sin: Float32Array,
  sign: 1 | -1,
): void {
  const half = headDim >> 1;
  for (let r = 0; r < rows; r++) {
    const t = positions[r] * half;
    for (let h = 0; h < heads; h++) {
      const off = (r * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[t + i],
          s = sign * sin[t + i];
        const x0 = x[off + i],
          x1 = x[off + half + i];
        x[off + i] = x0 * c - x1 * s;
        x[off + half + i] = x1 * c + x0 * s;
      }
    }
  }
}
