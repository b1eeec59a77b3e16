import assert from 'node:assert/strict';
import { Tape } from '../../src/autograd/tape.js';
import { Tensor } from '../../src/autograd/tensor.js';

/**
 * Check an op's backward rule against central finite differences of an independent float64 reference.
 * `run` builds the op on the tape from float32 tensors; `ref` recomputes the op's output in float64 from
 * the same inputs. The scalar checked is sum(output * seed) for a fixed random seed gradient.
 */
export function checkOpGradients(
  inputs: { data: Float32Array; shape: number[]; grad: boolean }[],
  run: (tape: Tape, xs: Tensor[]) => Tensor,
  ref: (xs: Float64Array[]) => Float64Array,
  opts: { seed?: number; tol?: number; h?: number; maxProbes?: number } = {},
): void {
  const tol = opts.tol ?? 2e-3,
    h = opts.h ?? 1e-5;
  const tape = new Tape();
  const xs = inputs.map((i) => new Tensor(new Float32Array(i.data), i.shape, i.grad));
  const y = run(tape, xs);
  let state = opts.seed ?? 7;
  const rand = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const seed = new Float32Array(y.size).map(() => rand());
  // the float32 forward agrees with the float64 reference
  const x64 = inputs.map((i) => Float64Array.from(i.data));
  const y64 = ref(x64);
  assert.equal(y64.length, y.size);
  for (let i = 0; i < y.size; i++)
    assert.ok(Math.abs(y.data[i] - y64[i]) <= 1e-4 * (1 + Math.abs(y64[i])), `forward value ${i}: ${y.data[i]} vs ${y64[i]}`);
  tape.backwardFrom(y, seed);
  const f = (xsv: Float64Array[]) => {
    const out = ref(xsv);
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i] * seed[i];
    return s;
  };
  inputs.forEach((inp, a) => {
    if (!inp.grad) {
      assert.equal(xs[a].grad, null, `input ${a} is frozen but received a gradient`);
      return;
    }
    const g = xs[a].grad;
    assert.ok(g, `input ${a} received no gradient`);
    const n = inp.data.length;
    const step = Math.max(1, Math.floor(n / (opts.maxProbes ?? 64)));
    let scale = 0;
    for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(g[i]));
    for (let i = 0; i < n; i += step) {
      const plus = x64.map((t) => t.slice()),
        minus = x64.map((t) => t.slice());
      plus[a][i] += h;
      minus[a][i] -= h;
      const fd = (f(plus) - f(minus)) / (2 * h);
      assert.ok(Math.abs(fd - g[i]) <= tol * (scale + 1e-3), `input ${a} element ${i}: autograd ${g[i]} vs finite difference ${fd}`);
    }
  });
}

export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  let s = seed;
  return new Float32Array(n).map(() => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return ((s / 2147483648) * 2 - 1) * scale;
  });
}
