/**
 * Batched decoding (LlamaModel.forwardBatch): several sequences, each with its own cache and position, take one
 * decode step together. Each row's logits must be those of the float64 reference forward over that sequence
 * alone, and the caches must end as a one-sequence decode leaves them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KvevictError } from '../src/errors.js';
import { LlamaModel } from '../src/model/llama.js';
import { quantizeMatrix } from '../src/quant/quantize.js';
import type { Weights } from '../src/model/types.js';
import { LINEAR_NAMES, linearShape } from '../src/model/weights.js';
import { randomWeights, tinyConfig } from './helpers/random-model.js';
import { referenceForward } from './reference/llama-f64.js';
import { relErr } from './helpers/compare.js';
import { kernelPairs } from './helpers/kernel-pairs.js';
import { jsKernels } from '../src/kernels/js.js';
import type { MatrixWeights } from '../src/kernels/types.js';
import { Bf16Matrix } from '../src/quant/formats.js';
import { Rng } from '../src/util/rng.js';

const cfg = tinyConfig('llama', { vocab_size: 96 });
const prompts = [
  [5, 17, 33, 2, 9, 71, 40],
  [3, 88, 12],
  [60, 1, 1, 45, 23, 19, 8, 77, 31, 50, 64],
];
const next = [11, 42, 7];

function batchedStep(model: LlamaModel) {
  const caches = prompts.map((p) => {
    const c = model.newCache('f32');
    model.forward({ tokens: Int32Array.from(p), positions: Int32Array.from(p.map((_, i) => i)), cache: c });
    return c;
  });
  const logits = model.forwardBatch(Int32Array.from(next), Int32Array.from(prompts.map((p) => p.length)), caches);
  return { caches, logits };
}

describe('forwardBatch', () => {
  it('gives each sequence the logits of the float64 reference over that sequence alone', () => {
    const w = randomWeights(cfg, 7, 0.08);
    const { logits } = batchedStep(new LlamaModel(cfg, w));
    prompts.forEach((p, r) => {
      const ref = referenceForward(cfg, w, { tokens: [...p, next[r]] });
      const got = logits.subarray(r * cfg.vocabSize, (r + 1) * cfg.vocabSize);
      assert.ok(relErr(got, ref.logits[ref.logits.length - 1]) < 1e-4, `row ${r}`);
    });
  });

  it('leaves every cache as a one-sequence decode step does, also with Q8_0 weights', () => {
    const w = randomWeights(cfg, 9, 0.08);
    const q: Weights = { ...w, layers: w.layers.map((l) => ({ ...l })) };
    for (const l of q.layers)
      for (const n of LINEAR_NAMES) {
        const [rows, cols] = linearShape(cfg, n);
        l[n] = quantizeMatrix('q8_0', l[n] as Float32Array, rows, cols);
      }
    for (const weights of [w, q]) {
      const model = new LlamaModel(cfg, weights);
      const { caches, logits } = batchedStep(model);
      prompts.forEach((p, r) => {
        const alone = model.newCache('f32');
        // the prompt's prefill, then the same token as a one-row decode step
        model.forward({ tokens: Int32Array.from(p), positions: Int32Array.from(p.map((_, i) => i)), cache: alone });
        const stepLogits = model.forward({ tokens: Int32Array.of(next[r]), positions: Int32Array.of(p.length), cache: alone });
        assert.ok(relErr(logits.subarray(r * cfg.vocabSize, (r + 1) * cfg.vocabSize), stepLogits) < 1e-4, `row ${r}'s logits`);
        const single = model.forward({ tokens: Int32Array.of(4), positions: Int32Array.of(p.length + 1), cache: alone });
        const batched = model.forward({ tokens: Int32Array.of(4), positions: Int32Array.of(p.length + 1), cache: caches[r] });
        assert.equal(caches[r].layers[0][0].length, p.length + 2);
        assert.ok(relErr(batched, single) < 1e-4, `row ${r}`);
      });
    }
  });

  it('refuses mismatched lengths and a cache shared by two rows', () => {
    const model = new LlamaModel(cfg, randomWeights(cfg, 1));
    const c = model.newCache();
    assert.throws(() => model.forwardBatch(Int32Array.of(1, 2), Int32Array.of(0), [c]), KvevictError);
    assert.throws(() => model.forwardBatch(Int32Array.of(1, 2), Int32Array.of(0, 0), [c, c]), /its own cache/);
  });
});

describe('sgemvBatch', () => {
  const n = 40,
    k = 256,
    rows = 5;
  const rng = new Rng(11);
  const w = Float32Array.from({ length: n * k }, () => rng.next() * 2 - 1);
  const x = Float32Array.from({ length: rows * k }, () => rng.next() * 2 - 1);
  const halves = new Uint16Array(n * k);
  jsKernels.floatToHalf(w, halves, n * k);
  const formats: [string, MatrixWeights][] = [
    ['f32', w],
    ['f16', halves],
    [
      'bf16',
      new Bf16Matrix(
        Uint16Array.from(new Uint32Array(w.buffer), (u) => u >>> 16),
        n,
        k,
      ),
    ],
    ['q8_0', quantizeMatrix('q8_0', w, n, k)],
    ['q4_k', quantizeMatrix('q4_k', w, n, k)],
    ['q6_k', quantizeMatrix('q6_k', w, n, k)],
  ];
  for (const [name, kern] of kernelPairs())
    for (const [format, m] of formats)
      it(`${name}, ${format}: each row as sgemv computes it, and accumulates`, () => {
        const y = new Float32Array(rows * n).fill(0.5);
        kern.sgemvBatch(rows, n, k, m, x, y, true);
        for (let r = 0; r < rows; r++) {
          const one = new Float32Array(n).fill(0.5);
          jsKernels.sgemv(n, k, m, x.subarray(r * k, (r + 1) * k), one, true);
          assert.ok(relErr(y.subarray(r * n, (r + 1) * n), one) < 1e-5, `row ${r}`);
        }
      });
  it('refuses more rows than it takes', () => {
    for (const [, kern] of kernelPairs())
      assert.throws(() => kern.sgemvBatch(17, n, k, w, new Float32Array(17 * k), new Float32Array(17 * n)), /at most 16 rows/);
  });
});
