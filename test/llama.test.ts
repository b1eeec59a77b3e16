import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { KvevictError } from '../src/errors.js';
import { jsKernels, loadNative, type Kernels } from '../src/kernels/index.js';
import type { ModelConfig } from '../src/model/config.js';
import { LlamaModel } from '../src/model/llama.js';
import type { LayerView, FloatWeights as Weights } from '../src/model/types.js';
import { Rng } from '../src/util/rng.js';
import { randomWeights, smolConfig, tinyConfig, type TinyKind } from './helpers/random-model.js';
import { referenceForward } from './reference/llama-f64.js';
import { relErr } from './helpers/compare.js';

function nativeOrNull(): Kernels | null {
  try {
    return loadNative();
  } catch {
    return null;
  }
}
const backends: Kernels[] = [jsKernels, ...(nativeOrNull() ? [nativeOrNull()!] : [])];

function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(vocab));
}

function range(start: number, n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => start + i);
}

/** The weights with every linear layer's matrix (lm head included) rounded to IEEE halves and read back. */
function halfRounded(w: Weights): Weights {
  const round = (a: Float32Array): Float32Array => {
    const h = new Uint16Array(a.length);
    jsKernels.floatToHalf(a, h, a.length);
    const f = new Float32Array(a.length);
    jsKernels.halfToFloat(h, f, a.length);
    return f;
  };
  return {
    embed: w.embed,
    finalNorm: w.finalNorm,
    lmHead: round(w.lmHead),
    layers: w.layers.map((l) => ({
      ...l,
      q: round(l.q),
      k: round(l.k),
      v: round(l.v),
      o: round(l.o),
      gate: round(l.gate),
      up: round(l.up),
      down: round(l.down),
    })),
  };
}

function rowsOf(flat: Float32Array, width: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let r = 0; r < flat.length / width; r++) out.push(flat.subarray(r * width, (r + 1) * width));
  return out;
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  const e = relErr(a, b);
  if (process.env.SHOW_ERR) console.log(`${what}: ${e.toExponential(2)} (tol ${tol})`);
  assert.ok(e <= tol, `${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

/** Random weights and the float64 reference are the slow parts of the SmolLM-shaped tests: once for both backends. */
const memo = new Map<string, unknown>();
function once<T>(key: string, make: () => T): T {
  if (!memo.has(key)) memo.set(key, make());
  return memo.get(key) as T;
}

/** Weights scaled so that attention is far from uniform (std 0.02 would make every softmax flat). */
function tinyModel(
  kind: TinyKind,
  k: Kernels,
  overrides: Record<string, unknown> = {},
  seed = 7,
): { cfg: ModelConfig; w: Weights; model: LlamaModel } {
  const cfg = tinyConfig(kind, overrides);
  const w = randomWeights(cfg, seed, 0.15);
  return { cfg, w, model: new LlamaModel(cfg, w, k) };
}

const TINY_CASES: { name: string; kind: TinyKind; overrides?: Record<string, unknown>; start?: number }[] = [
  { name: 'llama, GQA group 2', kind: 'llama' },
  { name: 'llama, GQA group 1', kind: 'llama', overrides: { num_key_value_heads: 4 } },
  { name: 'llama, GQA group 4 (one KV head)', kind: 'llama', overrides: { num_key_value_heads: 1 } },
  { name: 'llama3 rope_scaling, positions past the original context', kind: 'llama3', start: 90 },
  { name: 'qwen2 (q/k/v biases)', kind: 'qwen2' },
  { name: 'qwen3 (q/k norms, head_dim 24)', kind: 'qwen3', start: 5 },
  { name: 'mistral (untied lm head)', kind: 'mistral' },
];

for (const k of backends) {
  describe(`LlamaModel vs the float64 reference (${k.name} kernels)`, () => {
    for (const c of TINY_CASES) {
      test(`tiny ${c.name}: every row's logits, chunked prefill`, () => {
        const { cfg, w, model } = tinyModel(c.kind, k, c.overrides);
        const tokens = randomTokens(13, cfg.vocabSize, 3);
        const positions = range(c.start ?? 0, tokens.length);
        const got = model.forward({ tokens, positions, cache: model.newCache(), logits: 'all', chunk: 5 });
        const ref = referenceForward(cfg, w, { tokens, positions });
        const rows = rowsOf(got, cfg.vocabSize);
        for (let r = 0; r < tokens.length; r++) assertClose(rows[r], ref.logits[r], 2e-5, `row ${r}`);
      });
    }

    test(`linear layers from packed weights: on by default with AVX-512 native kernels only; both settings agree with float64`, () => {
      const { cfg, w, model } = tinyModel('qwen2', k);
      const byDefault = k.name === 'native' && k.simd === 'avx512';
      assert.equal(model.packedPrefill, byDefault);
      assert.equal(
        new LlamaModel(cfg, w, k, { weights: 'f16' }).packedPrefill,
        byDefault,
        'f16 weights are packed as halves, by the same default',
      );
      const tokens = randomTokens(30, cfg.vocabSize, 6);
      const positions = range(0, tokens.length);
      const ref = referenceForward(cfg, w, { tokens, positions });
      for (const packedPrefill of [false, true]) {
        const m = new LlamaModel(cfg, w, k, { packedPrefill });
        assert.equal(m.packedPrefill, packedPrefill);
        const rows = rowsOf(m.forward({ tokens, positions, cache: m.newCache(), logits: 'all', chunk: 13 }), cfg.vocabSize);
        for (let r = 0; r < tokens.length; r++) assertClose(rows[r], ref.logits[r], 2e-5, `packedPrefill ${packedPrefill}, row ${r}`);
        // last-row logits: the last layer's keys and values come from the fused k|v product alone
        const last = m.forward({ tokens, positions, cache: m.newCache(), chunk: 13 });
        assertClose(last, ref.logits[tokens.length - 1], 2e-5, `packedPrefill ${packedPrefill}, last row only`);
      }
    });

    test('SmolLM2-135M shapes, 2 layers: last-row and all-row logits', () => {
      const cfg = smolConfig({ num_hidden_layers: 2 });
      assert.equal(cfg.hiddenSize, 576);
      assert.equal(cfg.numHeads, 9);
      assert.equal(cfg.numKvHeads, 3);
      assert.equal(cfg.headDim, 64);
      assert.equal(cfg.intermediateSize, 1536);
      assert.equal(cfg.vocabSize, 49152);
      const w = once('smol-2 weights', () => randomWeights(cfg, 11, 0.05));
      const model = new LlamaModel(cfg, w, k);
      const tokens = randomTokens(9, cfg.vocabSize, 4);
      const positions = range(0, tokens.length);
      const ref = once('smol-2 reference', () => referenceForward(cfg, w, { tokens, positions }));
      const last = model.forward({ tokens, positions, cache: model.newCache() });
      assertClose(last, ref.logits[tokens.length - 1], 2e-5, 'last row');
      const all = rowsOf(model.forward({ tokens, positions, cache: model.newCache(), logits: 'all', chunk: 4 }), cfg.vocabSize);
      for (let r = 0; r < tokens.length; r++) assertClose(all[r], ref.logits[r], 2e-5, `row ${r}`);
    });

    test('SmolLM2-135M shapes, all 30 layers, short prompt', () => {
      const cfg = smolConfig();
      assert.equal(cfg.numLayers, 30);
      const w = once('smol-30 weights', () => randomWeights(cfg, 12, 0.05));
      const model = new LlamaModel(cfg, w, k);
      const tokens = randomTokens(5, cfg.vocabSize, 5);
      const positions = range(0, tokens.length);
      const ref = once('smol-30 reference', () => referenceForward(cfg, w, { tokens, positions, lastOnly: true }));
      const got = model.forward({ tokens, positions, cache: model.newCache() });
      assertClose(got, ref.logits[0], 1e-4, 'last row');
    });

    test('f16 weights: tiny qwen3 and mistral, every row and the last, packed as halves or not, against float64 over the rounded weights', () => {
      for (const [kind, packedPrefill] of [
        ['qwen3', true],
        ['qwen3', false],
        ['mistral', true],
        ['mistral', false],
      ] as [TinyKind, boolean][]) {
        const { cfg, w } = tinyModel(kind, k);
        const model = new LlamaModel(cfg, w, k, { weights: 'f16', packedPrefill });
        assert.equal(model.weightFormat, 'f16');
        assert.equal(model.packedPrefill, packedPrefill);
        const tokens = randomTokens(13, cfg.vocabSize, 3);
        const positions = range(0, tokens.length);
        const ref = referenceForward(cfg, halfRounded(w), { tokens, positions });
        const rows = rowsOf(model.forward({ tokens, positions, cache: model.newCache(), logits: 'all', chunk: 5 }), cfg.vocabSize);
        for (let r = 0; r < tokens.length; r++) assertClose(rows[r], ref.logits[r], 2e-5, `${kind} f16 row ${r}`);
        // the rounding is real: float32 weights give other logits
        assert.ok(
          relErr(referenceForward(cfg, w, { tokens, positions }).logits[12], ref.logits[12]) > 1e-5,
          `${kind}: f16 rounding changes the logits`,
        );
        const cache = model.newCache();
        model.forward({ tokens: tokens.subarray(0, 12), positions: positions.subarray(0, 12), cache, logits: 'none' });
        assertClose(
          model.forward({ tokens: tokens.subarray(12), positions: positions.subarray(12), cache }),
          ref.logits[12],
          2e-5,
          `${kind} f16 decode row`,
        );
      }
    });

    test('f16 weights, SmolLM2-135M shapes, 2 layers: the lm head widened in blocks (all rows) and streamed as halves (last row)', () => {
      const cfg = smolConfig({ num_hidden_layers: 2 });
      const w = once('smol-2 weights', () => randomWeights(cfg, 11, 0.05));
      const model = new LlamaModel(cfg, w, k, { weights: 'f16' });
      const tokens = randomTokens(9, cfg.vocabSize, 4);
      const positions = range(0, tokens.length);
      const ref = once('smol-2 f16 reference', () => referenceForward(cfg, halfRounded(w), { tokens, positions }));
      assertClose(model.forward({ tokens, positions, cache: model.newCache() }), ref.logits[tokens.length - 1], 2e-5, 'last row');
      const all = rowsOf(model.forward({ tokens, positions, cache: model.newCache(), logits: 'all', chunk: 4 }), cfg.vocabSize);
      for (let r = 0; r < tokens.length; r++) assertClose(all[r], ref.logits[r], 2e-5, `row ${r}`);
    });

    test('input embeddings (soft tokens) after a token prompt', () => {
      const { cfg, w, model } = tinyModel('qwen3', k);
      const tokens = randomTokens(6, cfg.vocabSize, 8);
      const soft = new Rng(9).normalArray(3 * cfg.hiddenSize, 0.5);
      const cache = model.newCache();
      model.forward({ tokens, positions: range(0, 6), cache, logits: 'none' });
      const got = rowsOf(model.forward({ embeddings: soft, positions: range(6, 3), cache, logits: 'all' }), cfg.vocabSize);
      const embeddings = new Float32Array(9 * cfg.hiddenSize);
      embeddings.set(model.embed(tokens));
      embeddings.set(soft, 6 * cfg.hiddenSize);
      const ref = referenceForward(cfg, w, { embeddings });
      for (let r = 0; r < 3; r++) assertClose(got[r], ref.logits[6 + r], 2e-5, `soft row ${r}`);
    });
  });

  describe(`LlamaModel consistency (${k.name} kernels)`, () => {
    test('prefill then token-by-token decode equals one long prefill', () => {
      const { cfg, model } = tinyModel('llama', k);
      const tokens = randomTokens(12, cfg.vocabSize, 21);
      const whole = rowsOf(model.forward({ tokens, positions: range(0, 12), cache: model.newCache(), logits: 'all' }), cfg.vocabSize);
      const cache = model.newCache();
      const first = rowsOf(model.forward({ tokens: tokens.subarray(0, 5), positions: range(0, 5), cache, logits: 'all' }), cfg.vocabSize);
      for (let r = 0; r < 5; r++) assertClose(first[r], whole[r], 1e-5, `prefill row ${r}`);
      for (let r = 5; r < 12; r++) {
        const step = model.forward({ tokens: tokens.subarray(r, r + 1), positions: range(r, 1), cache });
        assertClose(step, whole[r], 1e-5, `decode row ${r}`);
      }
      assert.equal(cache.nextPosition, 12);
    });

    test('chunked prefill equals unchunked, for every chunk size', () => {
      const { cfg, model } = tinyModel('qwen2', k);
      const tokens = randomTokens(11, cfg.vocabSize, 22);
      const whole = model.forward({ tokens, positions: range(0, 11), cache: model.newCache(), logits: 'all' });
      for (const chunk of [1, 2, 4, 10, 11]) {
        const cache = model.newCache();
        const got = model.forward({ tokens, positions: range(0, 11), cache, logits: 'all', chunk });
        assertClose(got, whole, 1e-5, `chunk ${chunk}`);
        assert.equal(cache.head(1, 1).length, 11);
        const last = model.forward({ tokens, positions: range(0, 11), cache: model.newCache(), chunk });
        assertClose(last, whole.subarray(10 * cfg.vocabSize), 1e-5, `chunk ${chunk}, last row`);
      }
    });

    test('logits "none" returns nothing but fills the cache with the keys and values of "all"', () => {
      for (const kind of ['llama', 'qwen3'] as TinyKind[]) {
        const { cfg, model } = tinyModel(kind, k);
        const tokens = randomTokens(9, cfg.vocabSize, 1);
        const cache = model.newCache();
        const out = model.forward({ tokens, positions: range(0, 9), cache, logits: 'none', chunk: 4 });
        assert.equal(out.length, 0);
        assert.equal(cache.nextPosition, 9);
        const full = model.newCache();
        model.forward({ tokens, positions: range(0, 9), cache: full, logits: 'all' });
        for (let l = 0; l < cfg.numLayers; l++) {
          for (let h = 0; h < cfg.numKvHeads; h++) {
            const [a, b] = [cache.head(l, h), full.head(l, h)];
            assertClose(
              a.keyData.subarray(0, 9 * cfg.headDim),
              b.keyData.subarray(0, 9 * cfg.headDim),
              1e-5,
              `${kind} layer ${l} head ${h} keys`,
            );
            assertClose(
              a.valueData.subarray(0, 9 * cfg.headDim),
              b.valueData.subarray(0, 9 * cfg.headDim),
              1e-5,
              `${kind} layer ${l} head ${h} values`,
            );
          }
        }
        // and the last row's logits of a chunked 'last' prefill (its last layer runs that row alone) match 'all'
        const all = model.forward({ tokens, positions: range(0, 9), cache: model.newCache(), logits: 'all' });
        const last = model.forward({ tokens, positions: range(0, 9), cache: model.newCache(), chunk: 4 });
        assertClose(last, all.subarray(8 * cfg.vocabSize), 1e-5, `${kind}: last row`);
      }
    });

    test('the observer sees each layer once per chunk, with the right shapes, positions, and the cached keys', () => {
      const { cfg, w, model } = tinyModel('qwen3', k);
      const tokens = randomTokens(7, cfg.vocabSize, 23);
      const positions = range(0, 7);
      const seen: { layer: number; positions: number[]; queries: Float32Array; keys: Float32Array; values: Float32Array }[] = [];
      const observer = (v: LayerView) => {
        seen.push({
          layer: v.layer,
          positions: Array.from(v.positions),
          queries: v.queries.slice(),
          keys: v.keys.slice(),
          values: v.values.slice(),
        });
      };
      const cache = model.newCache();
      model.forward({ tokens, positions, cache, observer, chunk: 4 });
      const { numLayers: NL, numHeads: H, numKvHeads: Hkv, headDim: d } = cfg;
      assert.deepEqual(
        seen.map((s) => s.layer),
        [0, 1, 0, 1].slice(0, 2 * NL),
      );
      assert.deepEqual(
        seen.map((s) => s.positions),
        [
          [0, 1, 2, 3],
          [0, 1, 2, 3],
          [4, 5, 6],
          [4, 5, 6],
        ],
      );
      const ref = referenceForward(cfg, w, { tokens, positions });
      for (const s of seen) {
        const n = s.positions.length;
        assert.equal(s.queries.length, n * H * d);
        assert.equal(s.keys.length, n * Hkv * d);
        assert.equal(s.values.length, n * Hkv * d);
        for (let r = 0; r < n; r++) {
          const p = s.positions[r];
          assertClose(s.queries.subarray(r * H * d, (r + 1) * H * d), ref.queries[s.layer][p], 2e-5, `queries l${s.layer} p${p}`);
          assertClose(s.keys.subarray(r * Hkv * d, (r + 1) * Hkv * d), ref.keys[s.layer][p], 2e-5, `keys l${s.layer} p${p}`);
          assertClose(s.values.subarray(r * Hkv * d, (r + 1) * Hkv * d), ref.values[s.layer][p], 2e-5, `values l${s.layer} p${p}`);
          for (let h = 0; h < Hkv; h++) {
            const hc = cache.head(s.layer, h);
            assert.equal(hc.positions[p], p);
            assert.deepEqual(hc.keyData.subarray(p * d, (p + 1) * d), s.keys.subarray((r * Hkv + h) * d, (r * Hkv + h + 1) * d));
            assert.deepEqual(hc.valueData.subarray(p * d, (p + 1) * d), s.values.subarray((r * Hkv + h) * d, (r * Hkv + h + 1) * d));
          }
        }
      }
    });

    test('after eviction (heads of different lengths) decoding continues at the original positions', () => {
      const { cfg, w, model } = tinyModel('llama', k, { num_hidden_layers: 3 });
      const L = 10;
      const tokens = randomTokens(L + 3, cfg.vocabSize, 24);
      const cache = model.newCache();
      model.forward({ tokens: tokens.subarray(0, L), positions: range(0, L), cache, logits: 'none' });
      // each layer and KV head keeps its own seeded subset of the prompt
      const rng = new Rng(5);
      const kept: Set<number>[][] = [];
      for (let l = 0; l < cfg.numLayers; l++) {
        kept.push([]);
        for (let h = 0; h < cfg.numKvHeads; h++) {
          const keep = Array.from({ length: L }, (_, i) => i).filter(() => rng.next() < 0.5);
          if (keep.length === 0) keep.push(L - 1);
          kept[l].push(new Set(keep));
          cache.retain(l, h, Int32Array.from(keep));
        }
      }
      const got = rowsOf(model.forward({ tokens: tokens.subarray(L), positions: range(L, 3), cache, logits: 'all' }), cfg.vocabSize);
      const group = cfg.numHeads / cfg.numKvHeads;
      const ref = referenceForward(cfg, w, {
        tokens,
        visible: (layer, qHead, qPos, kPos) => qPos < L || kPos >= L || kept[layer][Math.floor(qHead / group)].has(kPos),
      });
      for (let r = 0; r < 3; r++) assertClose(got[r], ref.logits[L + r], 2e-5, `row ${L + r}`);
      // and differs from the uncompressed run, so the test can tell
      const full = referenceForward(cfg, w, { tokens });
      assert.ok(relErr(got[2], full.logits[L + 2]) > 1e-3);
    });

    test('embed() copies embedding rows; forward with them equals forward with the tokens', () => {
      const { cfg, w, model } = tinyModel('llama', k);
      const tokens = randomTokens(5, cfg.vocabSize, 25);
      const e = model.embed(tokens);
      assert.deepEqual(
        e.subarray(cfg.hiddenSize, 2 * cfg.hiddenSize),
        w.embed.subarray(tokens[1] * cfg.hiddenSize, (tokens[1] + 1) * cfg.hiddenSize),
      );
      const a = model.forward({ tokens, positions: range(0, 5), cache: model.newCache(), logits: 'all' });
      const b = model.forward({ embeddings: e, positions: range(0, 5), cache: model.newCache(), logits: 'all' });
      assert.deepEqual(a, b);
    });
  });
}

describe('LlamaModel errors', () => {
  test('positions beyond max_position_embeddings', () => {
    const { cfg, model } = tinyModel('llama', jsKernels, { max_position_embeddings: 16 });
    assert.throws(
      () => model.forward({ tokens: Int32Array.of(1, 2), positions: Int32Array.of(15, 16), cache: model.newCache() }),
      (e: unknown) => e instanceof KvevictError && /max_position_embeddings 16/.test(e.message),
    );
    assert.throws(() => model.forward({ tokens: Int32Array.of(1), positions: Int32Array.of(-1), cache: model.newCache() }), KvevictError);
    // the last valid position works
    assert.equal(model.forward({ tokens: Int32Array.of(1), positions: Int32Array.of(15), cache: model.newCache() }).length, cfg.vocabSize);
  });

  test('f16 weights: a weight beyond the half range is refused, naming its tensor; an unknown format too', () => {
    const cfg = tinyConfig('llama');
    const w = randomWeights(cfg, 1, 0.1);
    w.layers[1].up[5] = -1e5;
    assert.throws(
      () => new LlamaModel(cfg, w, jsKernels, { weights: 'f16' }),
      (e: unknown) => e instanceof KvevictError && /layer 1 up holds -100000 at index 5, beyond the f16 range/.test(e.message),
    );
    assert.ok(
      new LlamaModel(cfg, w, jsKernels)
        .forward({ tokens: Int32Array.of(1, 2), positions: Int32Array.of(0, 1), cache: new LlamaModel(cfg, w, jsKernels).newCache() })
        .every(Number.isFinite),
      'f32 takes it',
    );
    assert.throws(
      () => new LlamaModel(cfg, w, jsKernels, { weights: 'q8' as 'f16' }),
      /weights format must be one of auto, f32, f16, bf16, got "q8"/,
    );
  });

  test('bad token ids, mismatched positions, tokens and embeddings together', () => {
    const { cfg, model } = tinyModel('llama', jsKernels);
    assert.throws(
      () => model.forward({ tokens: Int32Array.of(cfg.vocabSize), positions: Int32Array.of(0), cache: model.newCache() }),
      /vocab_size 300/,
    );
    assert.throws(() => model.forward({ tokens: Int32Array.of(1, 2), positions: Int32Array.of(0), cache: model.newCache() }), KvevictError);
    assert.throws(
      () =>
        model.forward({
          tokens: Int32Array.of(1),
          embeddings: new Float32Array(cfg.hiddenSize),
          positions: Int32Array.of(0),
          cache: model.newCache(),
        }),
      KvevictError,
    );
    assert.throws(
      () => model.forward({ embeddings: new Float32Array(cfg.hiddenSize + 1), positions: Int32Array.of(0), cache: model.newCache() }),
      /hidden_size/,
    );
  });
});
