/**
 * Generation with eviction: memory really drops to the budget, and decoding on the compressed cache gives the
 * logits of a full-attention float64 reference in which the evicted entries are masked out.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { answer, prefillAndCompress, runQueryAgnostic, runQueryAware, runWithMode } from '../src/generate/pipeline.js';
import { makePress, type PressOptions } from '../src/press/index.js';
import type { KeepPlan } from '../src/press/types.js';
import { bytesFor, promptTokens, storedHalves, tinyModel } from './helpers/press-reference.js';
import { referenceForward, roundToHalf } from './reference/llama-f64.js';
import { HeadCache, KV_DTYPES, KvCache, type KvDtype } from '../src/cache/kv-cache.js';
import { selectCache } from '../src/press/select-cache.js';

/** An f16 cache as the reference's storeKv: every key and value the nearest half. */
function nearestHalves(_l: number, _p: number, _kind: string, row: Float64Array): void {
  for (let i = 0; i < row.length; i++) row[i] = roundToHalf(row[i]);
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Rows at positions >= L see the kept prompt entries of their layer and KV head, and every later row. */
function maskOf(plan: KeepPlan, L: number, group: number) {
  const sets = plan.map((layer) => layer.map((k) => new Set(k)));
  return (l: number, qh: number, qPos: number, kPos: number) => qPos < L || kPos >= L || sets[l][Math.floor(qh / group)].has(kPos);
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-4 * Math.max(1, scale), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

const PRESSES: [string, PressOptions][] = [
  ['snapkv', { budget: 12, window: 4, kernel: 3 }],
  ['adakv', { budget: 12, window: 4, kernel: 3 }],
  ['pyramidkv', { budget: 12, window: 4, kernel: 3 }],
  ['h2o', { budget: 10, window: 2 }],
  ['streaming', { budget: 9, sinks: 2 }],
  ['expected-attention', { budget: 11 }],
  ['laq++', { budget: 12, window: 4, w2: 2, lookahead: 3 }],
  ['snapkv', { ratio: 0.6, window: 4 }],
];

for (const kvDtype of KV_DTYPES)
  describe(`pipeline, ${kvDtype} cache`, () => {
    // the reference reads what the cache stores: with f16, every key and value rounded to the nearest half
    const storeKv = kvDtype === 'f16' ? nearestHalves : undefined;
    const h = tinyModel({ num_hidden_layers: 3, num_attention_heads: 6, num_key_value_heads: 2 }, 21, 0.15);
    const G = h.cfg.numHeads / h.cfg.numKvHeads;
    const L = 30;
    const prompt = promptTokens(L, 4);

    it('memory really drops to budget / length (heads of different lengths included)', async () => {
      for (const [name, o] of PRESSES) {
        const ctx = await prefillAndCompress(h.model, prompt, makePress(name, o), { kvDtype });
        const B = o.budget ?? Math.round(L * (1 - o.ratio!));
        assert.equal(ctx.fullCacheBytes, bytesFor(h.cfg, L, kvDtype), name);
        assert.equal(ctx.cacheBytes, bytesFor(h.cfg, B, kvDtype), `${name} bytes`);
        assert.equal(ctx.cache.allocatedBytes, ctx.cacheBytes, `${name}: nothing allocated beyond the live entries`);
        assert.equal(ctx.nextPosition, L);
        let total = 0;
        ctx.plan.forEach((layer, l) =>
          layer.forEach((kept, kv) => {
            assert.deepEqual(Array.from(ctx.cache.head(l, kv).positions.subarray(0, ctx.cache.head(l, kv).length)), Array.from(kept));
            total += kept.length;
          }),
        );
        assert.equal(total, h.cfg.numLayers * h.cfg.numKvHeads * B);
      }
      const lens = (await prefillAndCompress(h.model, prompt, makePress('adakv', { budget: 12, window: 4, kernel: 3 }), { kvDtype })).plan
        .flat()
        .map((k) => k.length);
      assert.ok(new Set(lens).size > 1, 'adakv gives heads different lengths');
    });

    it('no press or the full press keeps the whole cache', async () => {
      for (const press of [null, makePress('full')]) {
        const ctx = await prefillAndCompress(h.model, prompt, press, { kvDtype });
        assert.equal(ctx.cacheBytes, bytesFor(h.cfg, L, kvDtype));
      }
    });

    it('decoding after eviction equals full attention with the evicted entries masked out', async () => {
      const next = [17, 99, 5, 250];
      for (const [name, o] of PRESSES) {
        const ctx = await prefillAndCompress(h.model, prompt, makePress(name, o), { kvDtype });
        const steps = next.map((t, i) => h.model.forward({ tokens: Int32Array.of(t), positions: Int32Array.of(L + i), cache: ctx.cache }));
        // an f16 cache: the reference reads the halves the engine stored (those of the prompt before eviction are
        // a prefill without a press: the same computation), each checked to be the nearest half of its own value
        const stored =
          kvDtype === 'f16' ? storedHalves([(await prefillAndCompress(h.model, prompt, null, { kvDtype })).cache, ctx.cache]) : undefined;
        const seq = [...prompt, ...next];
        const ref = referenceForward(h.cfg, h.model.weights, { storeKv: stored, tokens: seq, visible: maskOf(ctx.plan, L, G) });
        assertClose(ctx.lastLogits, ref.logits[L - 1], `${name} prefill`);
        steps.forEach((logits, i) => assertClose(logits, ref.logits[L + i], `${name} step ${i}`));
        if (kvDtype === 'f16') {
          // the halves mattered: the reference on unrounded keys and values is farther than float32 noise
          const exact = referenceForward(h.cfg, h.model.weights, { tokens: seq, visible: maskOf(ctx.plan, L, G) });
          assert.ok(
            exact.logits[L + 3].some((v, i) => Math.abs(v - steps[3][i]) > 3e-4),
            `${name}: the f16 cache changes the logits`,
          );
        }
        // and the evicted entries did matter: the unmasked reference differs
        const full = referenceForward(h.cfg, h.model.weights, { storeKv, tokens: seq });
        assert.ok(
          full.logits[L + 3].some((v, i) => Math.abs(v - ref.logits[L + 3][i]) > 1e-3),
          `${name}: eviction changes the logits`,
        );
      }
    });

    it('query-aware: greedy generation from the prefill argmax on the compressed cache', async () => {
      const r = await runQueryAware(h.model, prompt, makePress('laq', { budget: 12, window: 4, lookahead: 4 }), {
        maxNewTokens: 5,
        stopTokens: [],
        kvDtype,
      });
      assert.equal(r.tokens.length, 5);
      assert.equal(r.cacheBytes, bytesFor(h.cfg, 12, kvDtype));
      assert.ok(r.prefillMs >= 0 && r.selectMs >= 0 && r.decodeMs >= 0);
      const mask = maskOf(r.plan, L, G);
      const seq = [...prompt];
      for (let i = 0; i < 5; i++) {
        const ref = referenceForward(h.cfg, h.model.weights, { storeKv, tokens: seq, visible: mask, lastOnly: true });
        const t = argmax(ref.logits[0]);
        assert.equal(r.tokens[i], t, `token ${i}`);
        seq.push(t);
      }
    });

    it('query-agnostic: questions at the original positions on copies of one compressed context', async () => {
      const context = promptTokens(26, 8);
      const questions = [promptTokens(4, 1), promptTokens(3, 2), []];
      const press = makePress('snapkv', { budget: 10, window: 4, kernel: 3 });
      const { context: ctx, answers } = await runQueryAgnostic(h.model, context, questions, press, {
        maxNewTokens: 3,
        stopTokens: [],
        kvDtype,
      });
      const Lc = context.length;
      assert.equal(ctx.cacheBytes, bytesFor(h.cfg, 10, kvDtype));
      assert.equal(ctx.cache.bytes, bytesFor(h.cfg, 10, kvDtype), 'answering leaves the context as it was');
      const mask = maskOf(ctx.plan, Lc, G);
      questions.forEach((q, qi) => {
        const seq = [...context, ...q];
        for (let i = 0; i < 3; i++) {
          const ref = referenceForward(h.cfg, h.model.weights, { storeKv, tokens: seq, visible: mask, lastOnly: true });
          const t = argmax(ref.logits[0]);
          assert.equal(answers[qi].tokens[i], t, `question ${qi} token ${i}`);
          seq.push(t);
        }
        assert.equal(answers[qi].cacheBytes, bytesFor(h.cfg, 10, kvDtype) + bytesFor(h.cfg, q.length + 2, kvDtype));
      });
      // answering again gives the same tokens
      assert.deepEqual(answer(h.model, ctx, questions[0], { maxNewTokens: 3, stopTokens: [], kvDtype }).tokens, answers[0].tokens);
    });

    it('runWithMode: the two modes as one call', async () => {
      const context = promptTokens(24, 3),
        question = promptTokens(5, 4);
      const press = () => makePress('snapkv', { budget: 10, window: 4, kernel: 3 });
      const aware = await runWithMode(h.model, 'query-aware', context, question, press(), { maxNewTokens: 3, stopTokens: [], kvDtype });
      assert.deepEqual(
        aware.tokens,
        (await runQueryAware(h.model, [...context, ...question], press(), { maxNewTokens: 3, stopTokens: [], kvDtype })).tokens,
      );
      assert.equal(aware.plan[0][0].length, 10);
      assert.ok(
        aware.plan[0][0].some((p) => p >= 24),
        'the question was compressed too',
      );
      const agnostic = await runWithMode(h.model, 'query-agnostic', context, question, press(), {
        maxNewTokens: 3,
        stopTokens: [],
        kvDtype,
      });
      const ctx = await prefillAndCompress(h.model, context, press(), { kvDtype });
      assert.deepEqual(agnostic.tokens, answer(h.model, ctx, question, { maxNewTokens: 3, stopTokens: [], kvDtype }).tokens);
      assert.ok(
        agnostic.plan[0][0].every((p) => p < 24),
        'only the context was compressed',
      );
      assert.equal(agnostic.cacheBytes, bytesFor(h.cfg, 10, kvDtype));
    });

    it('rejects an empty prompt', async () => {
      await assert.rejects(prefillAndCompress(h.model, [], null, { kvDtype }), /empty/);
    });
  });

describe('cache accounting', () => {
  it('live and peak bytes follow every append, retain, truncate, clone and head replacement', () => {
    const d = 4,
      entry = 2 * d * 4 + 4;
    const cache = new KvCache(2, 2, d);
    let live = 0,
      peak = 0;
    const expect = (delta: number) => {
      live += delta;
      peak = Math.max(peak, live);
      assert.equal(cache.bytes, live);
      assert.equal(cache.meter.live, live);
      assert.equal(cache.peakBytes, peak);
    };
    const rows = (n: number, from: number) => ({
      kv: new Float32Array(n * d).fill(1),
      pos: Int32Array.from({ length: n }, (_, i) => from + i),
    });
    for (const [l, h] of [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ]) {
      const r = rows(10, 0);
      cache.head(l, h).append(10, r.kv, r.kv, d, 0, r.pos);
      expect(10 * entry);
    }
    cache.retain(0, 1, Int32Array.of(2, 5, 9));
    expect(-7 * entry);
    cache.truncateFrom(8);
    expect(-(2 + 2 + 2 + 1) * entry); // heads (0,0), (1,0), (1,1) lose 8 and 9; (0,1) loses 9
    const r = rows(3, 20);
    cache.head(1, 1).append(3, r.kv, r.kv, d, 0, r.pos);
    expect(3 * entry);
    const copy = cache.clone();
    assert.equal(copy.bytes, live);
    assert.equal(copy.peakBytes, live, "a clone's peak starts at its size");
    cache.setHead(0, 0, new HeadCache(d));
    expect(-8 * entry);
    assert.throws(() => cache.setHead(0, 0, new HeadCache(d, 0, 'f16')), /own dtype/);
  });

  it('an f16 cache stores the nearest halves and keeps their bits through growth, retain, clone and selection', () => {
    const d = 8;
    const cache = new KvCache(1, 1, d, 'f16');
    const head = cache.head(0, 0);
    assert.equal(head.entryBytes, 2 * d * 2 + 4);
    const n = 40; // past the first capacity: the head grows
    const keys = Float32Array.from({ length: n * d }, (_, i) => Math.sin(i * 1.7) * 3 + 1e-3 * i);
    const values = keys.map((x) => -x / 7);
    for (let r = 0; r < n; r++) head.append(1, keys.subarray(r * d), values.subarray(r * d), d, 0, Int32Array.of(r));
    assert.equal(cache.bytes, n * (2 * d * 2 + 4));
    const k = head.keyRows(),
      v = head.valueRows();
    for (let i = 0; i < n * d; i++) {
      assert.equal(k[i], roundToHalf(keys[i]), `key ${i}`);
      assert.equal(v[i], roundToHalf(values[i]), `value ${i}`);
    }
    assert.deepEqual(head.keyRows(5, 2), k.subarray(5 * d, 7 * d));
    const keep = Int32Array.of(0, 7, 8, 39);
    const picked = selectCache(cache, [[keep]]);
    assert.equal(picked.dtype, 'f16');
    const clone = cache.clone();
    cache.retain(0, 0, keep);
    for (const c of [cache, picked])
      keep.forEach((p, i) => assert.deepEqual(c.head(0, 0).keyRows(i, 1), k.subarray(p * d, (p + 1) * d), `position ${p}`));
    assert.deepEqual(clone.head(0, 0).valueRows(), v);
    assert.throws(() => new KvCache(1, 1, d, 'f8' as KvDtype), /kvDtype must be f32 or f16, got "f8"/);
  });
});
