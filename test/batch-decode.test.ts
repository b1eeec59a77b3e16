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
        model.forward({ tokens: Int32Array.from([...p, next[r]]), positions: Int32Array.from([...p, 0].map((_, i) => i)), cache: alone });
        const single = model.forward({ tokens: Int32Array.of(4), positions: Int32Array.of(p.length + 1), cache: alone });
        const batched = model.forward({ tokens: Int32Array.of(4), positions: Int32Array.of(p.length + 1), cache: caches[r] });
        assert.equal(caches[r].layers[0][0].length, p.length + 2);
        assert.ok(relErr(batched, single) < 1e-4, `row ${r}`);
        assert.ok(logits.subarray(r * cfg.vocabSize, (r + 1) * cfg.vocabSize).some((x) => x !== 0));
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
