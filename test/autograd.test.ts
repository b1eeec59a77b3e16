import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tape } from '../src/autograd/tape.js';
import { Tensor } from '../src/autograd/tensor.js';
import { beginBufferScope, endBufferScope, pooledBytes } from '../src/autograd/buffers.js';
import { linear } from '../src/autograd/ops/linear.js';
import { embedding } from '../src/autograd/ops/embedding.js';
import { rmsnorm } from '../src/autograd/ops/rmsnorm.js';
import { rope } from '../src/autograd/ops/rope.js';
import { attention } from '../src/autograd/ops/attention.js';
import { swiglu } from '../src/autograd/ops/swiglu.js';
import { add } from '../src/autograd/ops/add.js';
import { crossEntropy } from '../src/autograd/ops/cross-entropy.js';
import { mse } from '../src/autograd/ops/mse.js';
import { klRows } from '../src/autograd/ops/kl-rows.js';
import { scale } from '../src/autograd/ops/scale.js';
import { ropeTables, type ModelConfig } from '../src/model/config.js';
import { TrainModel } from '../src/train/model.js';
import { initParams, namedParams } from '../src/train/params.js';
import { checkOpGradients, randomArray } from './helpers/gradcheck.js';
import { add64, attention64, crossEntropy64, linear64, llamaLoss64, rmsnorm64, rope64, swiglu64 } from './helpers/llama64.js';

test('linear: trainable and frozen weights', () => {
  const rows = 5,
    inDim = 7,
    out = 4;
  for (const wGrad of [true, false]) {
    checkOpGradients(
      [
        { data: randomArray(rows * inDim, 1), shape: [rows, inDim], grad: true },
        { data: randomArray(out * inDim, 2), shape: [out, inDim], grad: wGrad },
      ],
      (t, [x, w]) => linear(t, x, w),
      ([x, w]) => linear64(x, w, rows, inDim, out),
    );
  }
});

test('embedding: scatter-add with repeated ids', () => {
  const ids = new Int32Array([3, 1, 3, 0, 2]);
  checkOpGradients(
    [{ data: randomArray(4 * 6, 3), shape: [4, 6], grad: true }],
    (t, [w]) => embedding(t, w, ids),
    ([w]) => {
      const y = new Float64Array(ids.length * 6);
      ids.forEach((id, r) => {
        for (let i = 0; i < 6; i++) y[r * 6 + i] = w[id * 6 + i];
      });
      return y;
    },
  );
});

test('rmsnorm: input and weight', () => {
  checkOpGradients(
    [
      { data: randomArray(3 * 8, 4), shape: [3, 8], grad: true },
      { data: randomArray(8, 5), shape: [8], grad: true },
    ],
    (t, [x, w]) => rmsnorm(t, x, w, 1e-5),
    ([x, w]) => rmsnorm64(x, w, 3, 8, 1e-5),
  );
});

test('rope: half-split rotation and its inverse', () => {
  const cfg = { headDim: 8, ropeTheta: 10000, ropeScaling: null } as unknown as ModelConfig;
  const { cos, sin } = ropeTables(cfg, 64);
  const pos = new Int32Array([0, 5, 17, 63]);
  checkOpGradients(
    [{ data: randomArray(4 * 2 * 8, 6), shape: [4, 16], grad: true }],
    (t, [x]) => rope(t, x, 2, 8, pos, cos, sin),
    ([x]) => rope64(x, 4, 2, 8, pos, 10000),
  );
});

test('attention: causal GQA over packed sequences, longer than one score block', () => {
  const H = 4,
    Hk = 2,
    d = 4;
  const spans = [
    { start: 0, length: 3 },
    { start: 3, length: 139 },
  ];
  const rows = 142;
  checkOpGradients(
    [
      { data: randomArray(rows * H * d, 7), shape: [rows, H * d], grad: true },
      { data: randomArray(rows * Hk * d, 8), shape: [rows, Hk * d], grad: true },
      { data: randomArray(rows * Hk * d, 9), shape: [rows, Hk * d], grad: true },
    ],
    (t, [q, k, v]) => attention(t, q, k, v, spans, { heads: H, kvHeads: Hk, headDim: d, scale: 1 / Math.sqrt(d) }),
    ([q, k, v]) => attention64(q, k, v, spans, H, Hk, d),
    { maxProbes: 24 },
  );
});

test('swiglu, add', () => {
  checkOpGradients(
    [
      { data: randomArray(20, 10, 3), shape: [20], grad: true },
      { data: randomArray(20, 11), shape: [20], grad: true },
    ],
    (t, [g, u]) => swiglu(t, g, u),
    ([g, u]) => swiglu64(g, u),
  );
  checkOpGradients(
    [
      { data: randomArray(9, 12), shape: [9], grad: true },
      { data: randomArray(9, 13), shape: [9], grad: false },
    ],
    (t, [a, b]) => add(t, a, b),
    ([a, b]) => add64(a, b),
  );
});

test('cross-entropy with per-row weights (zero weights skip rows)', () => {
  const targets = new Int32Array([2, 0, 4, 1]);
  const weights = new Float32Array([1, 0, 0.5, 2]);
  checkOpGradients(
    [{ data: randomArray(4 * 5, 14, 3), shape: [4, 5], grad: true }],
    (t, [x]) => crossEntropy(t, x, targets, weights).loss,
    ([x]) => new Float64Array([crossEntropy64(x, 5, targets, weights)]),
  );
});

test('mse: both sides', () => {
  checkOpGradients(
    [
      { data: randomArray(12, 15), shape: [12], grad: true },
      { data: randomArray(12, 16), shape: [12], grad: true },
    ],
    (t, [a, b]) => mse(t, a, b),
    ([a, b]) => {
      let s = 0;
      for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
      return new Float64Array([s / a.length]);
    },
  );
});

test('scale: y = s x', () => {
  checkOpGradients(
    [{ data: randomArray(10, 17), shape: [10], grad: true }],
    (t, [x]) => scale(t, x, -2.5),
    ([x]) => x.map((v) => -2.5 * v),
  );
});

test('klRows: mean over rows of KL(normalized target || normalized pred), zeros in the target included', () => {
  const rows = 3,
    cols = 5;
  const pred = randomArray(rows * cols, 18).map((v) => 0.1 + Math.abs(v));
  const target = randomArray(rows * cols, 19).map((v) => Math.abs(v));
  target[2] = 0;
  target[9] = 0;
  checkOpGradients(
    [{ data: pred, shape: [rows, cols], grad: true }],
    (t, [p]) => klRows(t, p, target, rows),
    ([p]) => {
      let kl = 0;
      for (let r = 0; r < rows; r++) {
        let ps = 0,
          ts = 0;
        for (let j = 0; j < cols; j++) {
          ps += p[r * cols + j];
          ts += target[r * cols + j];
        }
        for (let j = 0; j < cols; j++) {
          const tj = target[r * cols + j] / ts;
          if (tj > 0) kl += tj * Math.log(tj / (p[r * cols + j] / ps));
        }
      }
      return new Float64Array([kl / rows]);
    },
  );
});

test('whole two-layer GQA model: every parameter gradient matches finite differences', () => {
  const cfg: ModelConfig = {
    modelType: 'llama',
    hiddenSize: 8,
    intermediateSize: 12,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    vocabSize: 11,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositions: 32,
    tieWordEmbeddings: true,
    attentionBias: false,
    qkNorm: false,
    bosTokenId: null,
    eosTokenIds: [],
  };
  const params = initParams(cfg, 3);
  // larger weights than the init so every path matters
  for (const { tensor } of namedParams(params))
    tensor.data.set(randomArray(tensor.size, tensor.size + 17, 0.5).map((v, i) => (tensor.shape.length === 1 ? 1 + v : v) + 0 * i));
  const model = new TrainModel(cfg, params);
  const ids = new Int32Array([1, 4, 7, 2, 9, 3, 3, 10]);
  const positions = new Int32Array([0, 1, 2, 3, 4, 0, 1, 2]);
  const spans = [
    { start: 0, length: 5 },
    { start: 5, length: 3 },
  ];
  const targets = new Int32Array([4, 7, 2, 9, 0, 3, 10, 5]);
  const weights = new Float32Array([1, 1, 0.5, 1, 0, 1, 1, 1]);
  const tape = new Tape();
  const { loss } = crossEntropy(tape, model.logits(tape, { ids, positions, spans }), targets, weights);
  tape.backward(loss);
  const named = namedParams(params);
  const p64 = named.map(({ tensor }) => Float64Array.from(tensor.data));
  const shape = { vocab: 11, hidden: 8, layers: 2, heads: 4, kvHeads: 2, headDim: 4, inter: 12, eps: 1e-5, theta: 10000 };
  const f = (p: Float64Array[]) => llamaLoss64(shape, p, ids, positions, spans, targets, weights);
  assert.ok(Math.abs(f(p64) - loss.data[0]) < 1e-4, `loss ${loss.data[0]} vs float64 ${f(p64)}`);
  const h = 1e-5;
  named.forEach(({ name, tensor }, a) => {
    const g = tensor.grad;
    assert.ok(g, `${name} received no gradient`);
    let scale = 0;
    for (const v of g) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < tensor.size; i += Math.max(1, Math.floor(tensor.size / 10))) {
      const plus = p64.map((t) => t.slice()),
        minus = p64.map((t) => t.slice());
      plus[a][i] += h;
      minus[a][i] -= h;
      const fd = (f(plus) - f(minus)) / (2 * h);
      assert.ok(Math.abs(fd - g[i]) <= 3e-3 * (scale + 1e-3), `${name}[${i}]: autograd ${g[i]} vs finite difference ${fd}`);
    }
  });
});

test('a frozen tensor never receives a gradient', () => {
  const tape = new Tape();
  const x = new Tensor(randomArray(6, 1), [2, 3], false);
  const w = new Tensor(randomArray(6, 2), [2, 3], true);
  const y = linear(tape, x, w);
  tape.backwardFrom(y, new Float32Array(4).fill(1));
  assert.equal(x.grad, null);
  assert.ok(w.grad);
});

test('attention without a tape gives the same output as with one', () => {
  const H = 4,
    Hk = 2,
    d = 8,
    rows = 300;
  const spans = [{ start: 0, length: 300 }];
  const mk = (n: number, s: number) => new Tensor(randomArray(n, s), [n], true);
  const q = mk(rows * H * d, 1),
    k = mk(rows * Hk * d, 2),
    v = mk(rows * Hk * d, 3);
  const shape = { heads: H, kvHeads: Hk, headDim: d, scale: 1 / Math.sqrt(d) };
  const a = attention(new Tape(), q, k, v, spans, shape);
  const b = attention(null, q, k, v, spans, shape);
  assert.deepEqual(Array.from(a.data), Array.from(b.data));
  const ref = attention64(Float64Array.from(q.data), Float64Array.from(k.data), Float64Array.from(v.data), spans, H, Hk, d);
  for (let i = 0; i < ref.length; i += 97) assert.ok(Math.abs(ref[i] - b.data[i]) < 1e-5);
});

test('pooled step buffers: repeated steps in buffer scopes give the gradients of unpooled ones, bit for bit, and reuse their memory', () => {
  const cfg: ModelConfig = {
    modelType: 'llama',
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    vocabSize: 29,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositions: 300,
    tieWordEmbeddings: true,
    attentionBias: false,
    qkNorm: false,
    bosTokenId: null,
    eosTokenIds: [],
  };
  const model = new TrainModel(cfg, initParams(cfg, 5));
  const named = namedParams(model.params);
  const batchOf = (lengths: number[]) => {
    const n = lengths.reduce((a, b) => a + b, 0);
    const ids = Int32Array.from({ length: n }, (_, i) => (i * 7 + lengths.length) % 29);
    const positions = new Int32Array(n),
      spans = [];
    let o = 0;
    for (const l of lengths) {
      for (let i = 0; i < l; i++) positions[o + i] = i;
      spans.push({ start: o, length: l });
      o += l;
    }
    return { ids, positions, spans, targets: Int32Array.from(ids, (v) => (v + 3) % 29), weights: new Float32Array(n).fill(1) };
  };
  const step = (b: ReturnType<typeof batchOf>, pooled: boolean) => {
    for (const { tensor } of named) tensor.zeroGrad();
    const tape = new Tape();
    if (pooled) beginBufferScope();
    const { loss } = crossEntropy(tape, model.logits(tape, b), b.targets, b.weights);
    tape.backward(loss);
    if (pooled) endBufferScope();
    return { loss: loss.data[0], grads: named.map(({ tensor }) => Float32Array.from(tensor.grad!)) };
  };
  // unpooled references first, then pooled steps whose shapes differ (so buffers are handed from one shape to another)
  const shapes = [[200, 40], [130], [200, 40], [64, 64, 64]];
  const want = shapes.map((s) => step(batchOf(s), false));
  for (let round = 0; round < 2; round++) {
    shapes.forEach((s, i) => {
      const got = step(batchOf(s), true);
      assert.equal(got.loss, want[i].loss, `shape ${s}: loss`);
      got.grads.forEach((g, j) => assert.deepEqual(g, want[i].grads[j], `shape ${s}: ${named[j].name}`));
    });
  }
  const held = pooledBytes();
  step(batchOf([200, 40]), true);
  assert.equal(pooledBytes(), held, 'a repeated step allocates nothing new');
});
