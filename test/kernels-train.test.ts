import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';
import { jsKernels } from '../src/kernels/js.js';
import { loadNative } from '../src/kernels/index.js';
import type { Kernels } from '../src/kernels/types.js';

// float64 definitions of training's row kernels, written from their contracts in src/kernels/types.ts

function softmax64(e: Float32Array, rows: number, n: number, m: number, r0: number): { e: Float64Array; inv: Float64Array } {
  const out = new Float64Array(rows * n),
    inv = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const vis = Math.min(n, r0 + (r % m) + 1);
    let max = -Infinity;
    for (let j = 0; j < vis; j++) max = Math.max(max, e[r * n + j]);
    let sum = 0;
    for (let j = 0; j < vis; j++) sum += out[r * n + j] = Math.exp(e[r * n + j] - max);
    inv[r] = 1 / sum;
  }
  return { e: out, inv };
}

function softmaxGrad64(...[dS, e, inv, dd, rows, n, m, r0]: Parameters<Kernels['causalSoftmaxGrad']>): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const vis = Math.min(n, r0 + (r % m) + 1);
    for (let j = 0; j < vis; j++) out[r * n + j] = e[r * n + j] * inv[r] * (dS[r * n + j] - dd[r]);
  }
  return out;
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]),
      scale = Math.max(1, Math.abs(want[i]));
    if (!(err <= tol * scale)) assert.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

const backends: [string, Kernels | null][] = [
  ['js', jsKernels],
  ['native', loadNative()],
];

for (const [name, k] of backends) {
  describe(`training row kernels (${name})`, { skip: k === null ? 'native addon not built' : false }, () => {
    // shapes: one query head per group, GQA groups of 2 and 4, blocks not starting at row 0, rows past n masked
    const shapes = [
      { m: 5, group: 1, r0: 0 },
      { m: 16, group: 2, r0: 0 },
      { m: 33, group: 4, r0: 64 },
      { m: 128, group: 2, r0: 300 },
    ];
    test('causalSoftmax: exp(x - max) on visible keys, zeros after, 1 / sum', () => {
      const rng = new Rng(5);
      for (const { m, group, r0 } of shapes) {
        const rows = m * group,
          n = r0 + m;
        const e = rng.normalArray(rows * n, 3);
        const want = softmax64(e, rows, n, m, r0);
        const inv = new Float32Array(rows).fill(NaN);
        k!.causalSoftmax(e, inv, rows, n, m, r0);
        close(e, want.e, 2e-6, `e m=${m} g=${group} r0=${r0}`);
        close(inv, want.inv, 2e-6, `inv m=${m} g=${group} r0=${r0}`);
      }
    });
    test('causalSoftmaxGrad: e * inv * (dS - D) on visible keys, zeros after', () => {
      const rng = new Rng(6);
      for (const { m, group, r0 } of shapes) {
        const rows = m * group,
          n = r0 + m;
        const e = rng.normalArray(rows * n, 1),
          dS = rng.normalArray(rows * n, 1);
        const inv = rng.normalArray(rows, 1),
          dd = rng.normalArray(rows, 1);
        const want = softmaxGrad64(dS, e, inv, dd, rows, n, m, r0);
        k!.causalSoftmaxGrad(dS, e, inv, dd, rows, n, m, r0);
        close(dS, want, 1e-5, `dS m=${m} g=${group} r0=${r0}`);
      }
    });
    test('softmaxRowsAccumulate adds each row softmax over its visible prefix, per group head', () => {
      const rng = new Rng(8);
      for (const [rows, group, width] of [
        [1, 1, 1],
        [3, 2, 17],
        [40, 4, 300],
      ]) {
        const s = rng.normalArray(rows * group * width, 4);
        const vis = Int32Array.from({ length: rows }, (_, r) => (r === 0 ? 0 : 1 + rng.int(width + 3))); // 0, and past width
        const out = rng.normalArray(group * width, 1);
        const want = Float64Array.from(out);
        for (let r = 0; r < rows; r++) {
          const v = Math.min(vis[r], width);
          for (let g = 0; g < group; g++) {
            const o = (r * group + g) * width;
            let max = -Infinity,
              sum = 0;
            for (let j = 0; j < v; j++) max = Math.max(max, s[o + j]);
            for (let j = 0; j < v; j++) sum += Math.exp(s[o + j] - max);
            for (let j = 0; j < v; j++) want[g * width + j] += Math.exp(s[o + j] - max) / sum;
          }
        }
        k!.softmaxRowsAccumulate(s, rows, group, width, vis, out);
        close(out, want, 1e-5, `rows=${rows} group=${group} width=${width}`);
      }
    });
    test('softmaxRowsMax keeps the largest row softmax over its visible prefix, per group head', () => {
      const rng = new Rng(18);
      for (const [rows, group, width] of [
        [1, 1, 1],
        [3, 2, 17],
        [40, 4, 300],
      ]) {
        const s = rng.normalArray(rows * group * width, 4);
        const vis = Int32Array.from({ length: rows }, (_, r) => (r === 0 ? 0 : 1 + rng.int(width + 3)));
        const out = Float32Array.from(rng.normalArray(group * width, 0.05), (x) => Math.abs(x));
        const want = Float64Array.from(out);
        for (let r = 0; r < rows; r++) {
          const v = Math.min(vis[r], width);
          for (let g = 0; g < group; g++) {
            const row = Array.from(s.subarray((r * group + g) * width, (r * group + g) * width + v));
            const max = Math.max(...row);
            const z = row.reduce((a, x) => a + Math.exp(x - max), 0);
            row.forEach((x, j) => (want[g * width + j] = Math.max(want[g * width + j], Math.exp(x - max) / z)));
          }
        }
        k!.softmaxRowsMax(s, rows, group, width, vis, out);
        close(out, want, 1e-5, `rows=${rows} group=${group} width=${width}`);
      }
    });
    test('crossEntropy: argmax, log-sum-exp and row loss by their definitions; zero-weight rows only argmax', () => {
      const rng = new Rng(9);
      for (const [rows, vocab] of [
        [1, 1],
        [3, 17],
        [21, 259],
        [9, 8192],
      ]) {
        const logits = rng.normalArray(rows * vocab, 4);
        if (vocab > 1) logits[vocab + 1] = logits[vocab] = 50; // a tie in row 1: the first maximum wins
        const targets = Int32Array.from({ length: rows }, () => rng.int(vocab));
        const weights = Float32Array.from({ length: rows }, (_, r) => (r % 3 === 2 ? 0 : 0.5 + r));
        const lse = new Float32Array(rows).fill(NaN),
          rowLoss = new Float32Array(rows).fill(NaN),
          argmax = new Int32Array(rows).fill(-1);
        k!.crossEntropy(logits, rows, vocab, targets, weights, lse, rowLoss, argmax);
        for (let r = 0; r < rows; r++) {
          let am = 0,
            sum = 0;
          for (let j = 0; j < vocab; j++) if (logits[r * vocab + j] > logits[r * vocab + am]) am = j;
          for (let j = 0; j < vocab; j++) sum += Math.exp(logits[r * vocab + j]);
          assert.equal(argmax[r], am, `argmax row ${r} vocab ${vocab}`);
          const wantLse = weights[r] === 0 ? 0 : Math.log(sum),
            wantLoss = weights[r] === 0 ? 0 : Math.log(sum) - logits[r * vocab + targets[r]];
          close([lse[r], rowLoss[r]], [wantLse, wantLoss], 2e-6, `row ${r} vocab ${vocab}`);
        }
      }
    });
    test('crossEntropyGrad accumulates coef * (softmax - one-hot) on rows with a coefficient', () => {
      const rng = new Rng(10);
      for (const [rows, vocab] of [
        [1, 1],
        [4, 33],
        [10, 8192],
      ]) {
        const logits = rng.normalArray(rows * vocab, 3),
          grad = rng.normalArray(rows * vocab, 1);
        const targets = Int32Array.from({ length: rows }, () => rng.int(vocab));
        const coef = Float32Array.from({ length: rows }, (_, r) => (r === 1 ? 0 : (r + 1) * 0.25));
        const lse = new Float32Array(rows);
        const want = Float64Array.from(grad);
        for (let r = 0; r < rows; r++) {
          let sum = 0;
          for (let j = 0; j < vocab; j++) sum += Math.exp(logits[r * vocab + j]);
          lse[r] = Math.log(sum);
          if (coef[r] === 0) continue;
          for (let j = 0; j < vocab; j++)
            want[r * vocab + j] += coef[r] * (Math.exp(logits[r * vocab + j]) / sum - (j === targets[r] ? 1 : 0));
        }
        k!.crossEntropyGrad(grad, logits, rows, vocab, targets, lse, coef);
        close(grad, want, 1e-5, `grad rows=${rows} vocab=${vocab}`);
      }
    });
    test('siluMulGrad accumulates both gradients, or one of them', () => {
      const rng = new Rng(7);
      for (const n of [1, 17, 40000]) {
        const g = rng.normalArray(n, 3),
          u = rng.normalArray(n, 1),
          dy = rng.normalArray(n, 1);
        const dg = rng.normalArray(n, 1),
          du = rng.normalArray(n, 1);
        const wantG = new Float64Array(n),
          wantU = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          // d/dg [g * sigmoid(g) * u] and d/du, by their definitions
          const s = 1 / (1 + Math.exp(-g[i]));
          wantU[i] = du[i] + dy[i] * g[i] * s;
          wantG[i] = dg[i] + dy[i] * u[i] * (s + g[i] * s * (1 - s));
        }
        const dgOnly = Float32Array.from(dg);
        k!.siluMulGrad(dg, du, dy, g, u, n);
        close(dg, wantG, 1e-5, `dGate n=${n}`);
        close(du, wantU, 1e-5, `dUp n=${n}`);
        k!.siluMulGrad(dgOnly, null, dy, g, u, n);
        close(dgOnly, wantG, 1e-5, `dGate alone n=${n}`);
      }
    });
  });
}

describe('training row kernels: bad arguments', { skip: loadNative() === null ? 'native addon not built' : false }, () => {
  test('short arrays are a RangeError naming the argument', () => {
    const k = loadNative()!;
    assert.throws(() => k.causalSoftmax(new Float32Array(3), new Float32Array(2), 2, 2, 1, 0), /e has 3 elements, needs 4/);
    assert.throws(
      () => k.causalSoftmaxGrad(new Float32Array(4), new Float32Array(4), new Float32Array(1), new Float32Array(2), 2, 2, 1, 0),
      /inv has 1 elements/,
    );
    assert.throws(() => k.siluMulGrad(null, null, new Float32Array(2), new Float32Array(3), new Float32Array(3), 3), /dy has 2 elements/);
    const f = (n: number) => new Float32Array(n);
    assert.throws(
      () => k.crossEntropy(f(5), 2, 3, new Int32Array(2), f(2), f(2), f(2), new Int32Array(2)),
      /logits has 5 elements, needs 6/,
    );
    assert.throws(
      () => k.crossEntropy(f(6), 2, 3, Int32Array.of(0, 3), f(2), f(2), f(2), new Int32Array(2)),
      /targets must lie in \[0, vocab\)/,
    );
    assert.throws(() => k.crossEntropyGrad(f(6), f(6), 2, 3, Int32Array.of(-1, 0), f(2), f(2)), /targets must lie/);
  });
});

for (const [name, k] of backends) {
  describe(`rmsnorm backward (${name})`, { skip: k === null ? 'native addon not built' : false }, () => {
    test('add: out = a + b, exactly, in place too, on sizes that leave a tail in every block', () => {
      const rng = new Rng(13);
      for (const n of [0, 1, 17, (1 << 17) + 5]) {
        const a = rng.normalArray(n, 1),
          b = rng.normalArray(n, 1),
          out = new Float32Array(n);
        const want = Float32Array.from(a, (x, i) => Math.fround(x + b[i]));
        k!.add(out, a, b, n);
        assert.deepEqual(out, want, `out n=${n}`);
        k!.add(a, a, b, n);
        assert.deepEqual(a, want, `in place n=${n}`);
      }
    });
    test('rmsnormGrad accumulates dx and dw by their float64 definitions, or either alone', () => {
      const rng = new Rng(12);
      for (const [rows, dim] of [
        [1, 1],
        [3, 17],
        [300, 256],
      ]) {
        const x = rng.normalArray(rows * dim, 2),
          dy = rng.normalArray(rows * dim, 1),
          w = rng.normalArray(dim, 1);
        const dx = rng.normalArray(rows * dim, 1),
          dw = rng.normalArray(dim, 1);
        const wantX = Float64Array.from(dx),
          wantW = Float64Array.from(dw);
        for (let r = 0; r < rows; r++) {
          let ss = 0,
            dot = 0;
          for (let i = 0; i < dim; i++) {
            ss += x[r * dim + i] ** 2;
            dot += w[i] * dy[r * dim + i] * x[r * dim + i];
          }
          const s = 1 / Math.sqrt(ss / dim + 1e-5);
          for (let i = 0; i < dim; i++) {
            wantX[r * dim + i] += s * w[i] * dy[r * dim + i] - (s ** 3 * dot * x[r * dim + i]) / dim;
            wantW[i] += dy[r * dim + i] * x[r * dim + i] * s;
          }
        }
        const dwOnly = Float32Array.from(dw);
        k!.rmsnormGrad(dx, dw, dy, x, w, rows, dim, 1e-5);
        close(dx, wantX, 2e-5, `dx ${rows}x${dim}`);
        close(dw, wantW, 2e-4, `dw ${rows}x${dim}`);
        k!.rmsnormGrad(null, dwOnly, dy, x, w, rows, dim, 1e-5);
        close(dwOnly, wantW, 2e-4, `dw alone ${rows}x${dim}`);
      }
    });
  });
}
