/** The pieces the methods are built from, on synthetic queries and keys: top-k, pooling, attention mass, budgets, ties. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KvCache } from '../src/cache/kv-cache.js';
import { jsKernels, kernels } from '../src/kernels/index.js';
import type { ModelConfig } from '../src/model/config.js';
import { accumulateAttention } from '../src/press/attention-mass.js';
import { AdaptiveAllocator } from '../src/press/budgets/adaptive.js';
import { expNonPositive } from '../src/kernels/fast-exp.js';
import { pyramidBudgets } from '../src/press/budgets/pyramid.js';
import { PrefillRecorder } from '../src/press/capture.js';
import { makePress } from '../src/press/index.js';
import { pool1d } from '../src/press/pool.js';
import { topK } from '../src/press/topk.js';
import type { PrefillRun, PressModel } from '../src/press/types.js';
import { Rng } from '../src/util/rng.js';
import { tinyConfig } from './helpers/random-model.js';
import { bfAttentionMass, bfPool, bfTopK, cacheFrom } from './helpers/press-reference.js';

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

/** A PrefillRun over a given cache, for scorers that need no forward pass. */
function syntheticRun(cfg: ModelConfig, cache: KvCache, windowQueries: Float32Array[] | null, L: number, w: number): PrefillRun {
  const model: PressModel = {
    config: cfg,
    newCache: () => new KvCache(cfg.numLayers, cfg.numKvHeads, cfg.headDim),
    forward: () => {
      throw new Error('no forward here');
    },
  };
  return {
    model,
    cache,
    tokens: new Int32Array(L),
    promptLength: L,
    startPosition: 0,
    lastLogits: new Float32Array(cfg.vocabSize),
    eosTokenIds: [],
    captured: { windowQueries, windowPositions: Int32Array.from({ length: w }, (_, i) => L - w + i), columnSums: null, queryStats: null },
  };
}

describe('topK', () => {
  it('matches a sort by (score desc, position desc), ties toward later positions', () => {
    const rng = new Rng(4);
    for (let t = 0; t < 200; t++) {
      const n = 1 + rng.int(40);
      const s = Float64Array.from({ length: n }, () => rng.int(5) - (rng.next() < 0.1 ? Infinity : 0));
      const k = rng.int(n + 2);
      assert.deepEqual(Array.from(topK(s, k)), bfTopK(s, k), `n=${n} k=${k} s=${s.join(',')}`);
    }
  });

  it('all equal: keeps the last k', () => {
    assert.deepEqual(Array.from(topK(new Float64Array(10), 3)), [7, 8, 9]);
  });
});

describe('expNonPositive', () => {
  it('matches Math.exp to 1e-11 relative over [-708, 0], 0 below', () => {
    const rng = new Rng(6);
    for (let i = 0; i < 20000; i++) {
      const x = i < 100 ? -i / 1000 : -rng.next() * (i % 3 === 0 ? 708 : 20);
      const want = Math.exp(x);
      assert.ok(Math.abs(expNonPositive(x) - want) <= 1e-11 * want, `exp(${x})`);
    }
    assert.equal(expNonPositive(0), 1);
    assert.equal(expNonPositive(-800), 0);
    assert.equal(expNonPositive(-Infinity), 0);
  });
});

describe('pool1d', () => {
  it('matches torch-style max and avg pooling (padding k/2, avg counts the padding)', () => {
    const rng = new Rng(2);
    const x = Float64Array.from({ length: 23 }, () => rng.next());
    for (const kind of ['max', 'avg'] as const)
      for (let k = 1; k <= 8; k++)
        for (const n of [1, 5, 23]) {
          close(pool1d(x, n, k, kind), bfPool(x, n, k, kind), 1e-12, `${kind} k=${k} n=${n}`);
        }
  });
});

describe('accumulateAttention', () => {
  const rng = new Rng(9);
  const H = 4,
    G = 2,
    d = 8,
    n = 1103,
    rows = 1000;
  const q = rng.normalArray(rows * H * d, 1.2);
  const keys = rng.normalArray(n * d, 1.2);
  const positions = Int32Array.from({ length: n }, (_, i) => 3 * i);
  const limits = Int32Array.from({ length: rows }, () => rng.int(3 * n + 5) - 2);
  const keyRows = Array.from({ length: n }, (_, j) => keys.subarray(j * d, (j + 1) * d));
  // key index j sits at position 3j: row limit p sees floor(p / 3) + 1 keys
  const bfRows = Array.from({ length: rows }, (_, r) => ({
    q: q.subarray(r * H * d, (r + 1) * H * d),
    limit: limits[r] < 0 ? -1 : Math.floor(limits[r] / 3),
  }));
  const want = [0, 1].map((g) => bfAttentionMass(bfRows, keyRows, 2 + g, 0, d));

  for (const [name, k] of [
    ['the kernels in use', kernels()],
    ['the TypeScript kernels', jsKernels],
  ] as const) {
    it(`equals the brute-force softmax column sums, with per-row limits and several row blocks (${name})`, () => {
      const out = [new Float64Array(n), new Float64Array(n)];
      out[1].fill(0.5); // accumulates on top of what is there
      accumulateAttention(k, { queries: q, rows, visibleUpTo: limits }, H, d, 2, G, { keys, positions, n }, out, 1 / Math.sqrt(d));
      close(out[0], want[0], 2e-6, 'group head 0');
      close(
        out[1],
        want[1].map((x) => x + 0.5),
        2e-6,
        'group head 1',
      );
    });
  }
});

describe('budgets', () => {
  it('pyramid budgets keep the total, fall with depth and follow the formula', () => {
    for (const [B, w, L, NL] of [
      [64, 8, 1000, 30],
      [128, 32, 300, 12],
      [40, 4, 45, 5],
      [16, 0, 100, 7],
      [20, 4, 30, 1],
    ]) {
      const b = pyramidBudgets(B, w, L, NL);
      const C = B - w;
      assert.equal(
        b.reduce((a, x) => a + x, 0),
        NL * Math.min(C, L - w),
        `total ${B} ${w} ${L} ${NL}`,
      );
      for (let l = 1; l < NL; l++) assert.ok(b[l] <= b[l - 1], 'non-increasing');
      for (const x of b) assert.ok(x >= 0 && x <= L - w);
      if (NL > 1) {
        let min = C / 20,
          max = 2 * C - min;
        if (max >= L - w) {
          max = L - w;
          min = 2 * C - max;
        }
        for (let l = 0; l < NL; l++) assert.ok(Math.abs(b[l] - (max - (l * (max - min)) / (NL - 1))) < 1 + 1e-9, `layer ${l}`);
      }
    }
  });

  it('adaptive: each head its safeguard, the rest to the best of the layer, ties to later positions then lower heads', () => {
    // two heads, 6 candidates, C = 4 per head (8 in the layer), safeguard floor(0.25 * 4) = 1
    const layer = [Float64Array.from([9, 1, 1, 1, 1, 1]), Float64Array.from([5, 5, 5, 5, 0, 8])];
    const chosen = new AdaptiveAllocator(0.25).allocate([layer], { budget: 4, window: 0, length: 6, numLayers: 1 });
    // head 0 safeguards 0 (9), head 1 safeguards 5 (8); then the 6 best of the rest: 5,5,5,5 of head 1 and
    // the two latest 1s of head 0 (positions 5 and 4)
    assert.deepEqual(
      chosen[0].map((x) => Array.from(x)),
      [
        [0, 4, 5],
        [0, 1, 2, 3, 5],
      ],
    );
    // an exact tie at the same position goes to the lower head: 5 first, then 3 at position 1 in both heads
    const tie = [Float64Array.from([5, 3]), Float64Array.from([0, 3])];
    const c2 = new AdaptiveAllocator(0).allocate([tie], { budget: 1, window: 0, length: 2, numLayers: 1 });
    assert.deepEqual(
      c2[0].map((x) => Array.from(x)),
      [[0, 1], []],
    );
  });
});

describe('ties', () => {
  const cfg = tinyConfig('llama', { num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2 });
  const d = cfg.headDim,
    Hkv = cfg.numKvHeads,
    H = cfg.numHeads;

  it('snapkv with identical keys keeps the latest candidates', async () => {
    const L = 20,
      w = 4;
    const key = Array.from({ length: Hkv * d }, (_, i) => (i % 3) - 1);
    const cache = cacheFrom(cfg, [Array.from({ length: L }, () => key)], [Array.from({ length: L }, () => key)]);
    const rng = new Rng(1);
    const run = syntheticRun(cfg, cache, [rng.normalArray(w * H * d)], L, w);
    const plan = await makePress('snapkv', { budget: 9, window: w, kernel: 3 }).compress(run);
    for (const kept of plan[0]) assert.deepEqual(Array.from(kept), [11, 12, 13, 14, 15, 16, 17, 18, 19]);
  });

  it('knorm with equal norms keeps the latest; streaming with sinks = budget keeps only the sinks', async () => {
    const L = 12;
    const keys = Array.from({ length: L }, (_, j) =>
      Array.from({ length: Hkv * d }, (_, i) => (i === j % d ? 2 : 0) + (j === 3 ? 5 : 0) * (i === 0 ? 1 : 0)),
    );
    const cache = cacheFrom(cfg, [keys], [keys]);
    const run = syntheticRun(cfg, cache, null, L, 0);
    const plan = await makePress('knorm', { budget: 4 }).compress(run);
    // position 3 has a larger norm, every other key has norm 2: the latest four of those
    for (const kept of plan[0]) assert.deepEqual(Array.from(kept), [8, 9, 10, 11]);
    const s = await makePress('streaming', { budget: 4, sinks: 4 }).compress(run);
    for (const kept of s[0]) assert.deepEqual(Array.from(kept), [0, 1, 2, 3]);
  });

  it('window shrinks to a ratio budget smaller than it', async () => {
    const L = 20,
      w = 8;
    const rng = new Rng(3);
    const keys = Array.from({ length: L }, () => Array.from(rng.normalArray(Hkv * d)));
    const run = syntheticRun(cfg, cacheFrom(cfg, [keys], [keys]), [rng.normalArray(w * H * d)], L, w);
    // round(20 * 0.75) = 5 < 8: the last five are kept
    const plan = await makePress('snapkv', { ratio: 0.75, window: w }).compress(run);
    for (const kept of plan[0]) assert.deepEqual(Array.from(kept), [15, 16, 17, 18, 19]);
  });
});

describe('prefill recorder', () => {
  it('column sums are the same whether the engine appends before or after calling the observer', () => {
    const c = tinyConfig('llama', { num_hidden_layers: 1 });
    const rng = new Rng(8);
    const L = 30,
      Hq = c.numHeads,
      K = c.numKvHeads,
      dd = c.headDim;
    const q = rng.normalArray(L * Hq * dd),
      k = rng.normalArray(L * K * dd),
      v = rng.normalArray(L * K * dd);
    const sums: Float64Array[] = [];
    for (const appendFirst of [true, false]) {
      const cache = new KvCache(1, K, dd);
      const rec = new PrefillRecorder(kernels(), c, cache, 0, L, { columnSums: true });
      for (let s = 0; s < L; s += 7) {
        const n = Math.min(7, L - s);
        const pos = Int32Array.from({ length: n }, (_, i) => s + i);
        const view = {
          layer: 0,
          positions: pos,
          queries: q.subarray(s * Hq * dd, (s + n) * Hq * dd),
          keys: k.subarray(s * K * dd, (s + n) * K * dd),
          values: v.subarray(s * K * dd, (s + n) * K * dd),
        };
        const append = () => {
          for (let h = 0; h < K; h++) cache.head(0, h).append(n, view.keys, view.values, K * dd, h * dd, pos);
        };
        if (appendFirst) append();
        rec.observer(view);
        if (!appendFirst) append();
      }
      sums.push(rec.result().columnSums![0]);
    }
    close(sums[0], sums[1], 1e-9, 'column sums');
    // and against the brute force for query head 3 (KV head 1)
    const keyRows = Array.from({ length: L }, (_, j) => k.subarray(j * K * dd, (j + 1) * K * dd));
    const rows = Array.from({ length: L }, (_, r) => ({ q: q.subarray(r * Hq * dd, (r + 1) * Hq * dd), limit: r }));
    close(sums[0].subarray(3 * L, 4 * L), bfAttentionMass(rows, keyRows, 3, 1, dd), 1e-5, 'head 3');
  });
});
