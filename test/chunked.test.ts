/**
 * Chunked prefill compression against a brute-force chunked definition: each chunk's rows see the entries
 * kept so far and their own chunk (the float64 reference forward with that visibility, re-run from the start
 * at every cut), and after each chunk every head keeps what the method's definition picks from its current
 * entries. Also: the bound on entries per head, the refusals, and one chunk as the one-shot compression.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KvevictError } from '../src/errors.js';
import { prefill, prefillAndCompress, runQueryAware, runWithMode } from '../src/generate/pipeline.js';
import type { ModelConfig } from '../src/model/config.js';
import type { Weights } from '../src/model/types.js';
import { makePress } from '../src/press/index.js';
import { assertPlanMatches, bfAttentionScores, bfTopK, promptTokens, tinyModel, type BfQuery } from './helpers/press-reference.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, flags } from './helpers/cli.js';
import { randomWeights, tinyConfig, tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { PrefillRecorder } from '../src/press/capture.js';
import { kernels } from '../src/kernels/index.js';
import { LlamaModel } from '../src/model/llama.js';
import { referenceForward } from './reference/llama-f64.js';

type Kept = number[][][]; // [layer][kvHead] -> sorted positions

/** The definition: chunk by chunk, `choose` picks each head's kept positions from its current entries. */
function bruteChunked(
  cfg: ModelConfig,
  w: Weights,
  tokens: Int32Array,
  chunk: number,
  choose: (entries: number[], l: number, h: number, ref: ReturnType<typeof referenceForward>, end: number) => number[],
): Kept {
  const G = cfg.numHeads / cfg.numKvHeads;
  const keptBefore: Kept[] = []; // keptBefore[c]: what chunk c's rows see of earlier chunks
  let kept: Kept = Array.from({ length: cfg.numLayers }, () => Array.from({ length: cfg.numKvHeads }, () => []));
  for (let s = 0, c = 0; s < tokens.length; s += chunk, c++) {
    const e = Math.min(tokens.length, s + chunk);
    keptBefore.push(kept);
    const ref = referenceForward(cfg, w, {
      tokens: tokens.subarray(0, e),
      lastOnly: true,
      visible: (l, qh, qPos, kPos) => {
        const qc = Math.floor(qPos / chunk);
        return kPos >= qc * chunk || keptBefore[qc][l][Math.floor(qh / G)].includes(kPos);
      },
    });
    kept = kept.map((layer, l) =>
      layer.map((prev, h) => {
        const entries = [...prev, ...Array.from({ length: e - s }, (_, i) => s + i)];
        return choose(entries, l, h, ref, e);
      }),
    );
  }
  return kept;
}

/** SnapKV over a head's current entries: the last `window` rows' softmax over the entries they see, pooled, GQA mean; scores by position. */
function snapChoose(cfg: ModelConfig, budget: number, window: number) {
  return (entries: number[], l: number, h: number, ref: ReturnType<typeof referenceForward>, end: number) => {
    const byPosition: number[] = [];
    if (entries.length <= budget) return { chosen: entries, scores: byPosition };
    const keys = entries.map((p) => ref.keys[l][p]);
    const rows: BfQuery[] = Array.from({ length: window }, (_, i) => ({
      q: ref.queries[l][end - window + i],
      limit: entries.length - window + i,
    }));
    const scores = bfAttentionScores(cfg, rows, keys, { window, kernel: 7, pool: 'max', gqa: 'mean' })[h];
    scores.forEach((x, j) => (byPosition[entries[j]] = x));
    const chosen = bfTopK(scores, budget - window).map((j) => entries[j]);
    return { chosen: [...chosen, ...entries.slice(entries.length - window)], scores: byPosition };
  };
}

describe('chunked prefill compression', () => {
  const { cfg, model } = tinyModel({}, 5, 0.2);
  const w = model.weights;
  const tokens = promptTokens(50, 7);

  for (const chunk of [8, 12, 20]) {
    it(`snapkv, chunks of ${chunk}: every cut as the definition; no head ever past budget + chunk`, async () => {
      const budget = 10,
        window = 4;
      const press = makePress('snapkv', { budget, window });
      // an f32 cache: the definition runs on the float64 reference's own keys
      const ctx = await prefillAndCompress(model, tokens, press, { chunkCompress: chunk, kvDtype: 'f32' });
      assert.ok(ctx.cache.peakBytes <= cfg.numLayers * cfg.numKvHeads * (budget + chunk) * (2 * cfg.headDim * 4 + 4));
      assert.equal(ctx.nextPosition, tokens.length);
      assert.equal(ctx.cacheBytes, cfg.numLayers * cfg.numKvHeads * budget * (2 * cfg.headDim * 4 + 4));
      // cut by cut: the engine's state after the cut at e is its run on the first e tokens; each cut is checked
      // against the definition applied to the engine's own previous state (float32 near-ties may differ, and a
      // difference would otherwise carry into every later cut)
      const G = cfg.numHeads / cfg.numKvHeads;
      const keptBefore: Kept[] = [];
      let prev: Kept = Array.from({ length: cfg.numLayers }, () => Array.from({ length: cfg.numKvHeads }, () => []));
      for (let s = 0; s < tokens.length; s += chunk) {
        const e = Math.min(tokens.length, s + chunk);
        keptBefore.push(prev);
        const at =
          e === tokens.length
            ? ctx
            : await prefillAndCompress(model, tokens.subarray(0, e), press, { chunkCompress: chunk, kvDtype: 'f32' });
        const ref = referenceForward(cfg, w, {
          tokens: tokens.subarray(0, e),
          lastOnly: true,
          visible: (l, qh, qPos, kPos) =>
            kPos >= Math.floor(qPos / chunk) * chunk || keptBefore[Math.floor(qPos / chunk)][l][Math.floor(qh / G)].includes(kPos),
        });
        const byPosition: number[][][] = [];
        const want = prev.map((layer, l) =>
          layer.map((kept, h) => {
            const entries = [...kept, ...Array.from({ length: e - s }, (_, i) => s + i)];
            const { chosen, scores } = snapChoose(cfg, budget, window)(entries, l, h, ref, e);
            (byPosition[l] ??= [])[h] = scores;
            return chosen;
          }),
        );
        assertPlanMatches(at.plan, want, byPosition, `chunk ${chunk}, cut at ${e}`);
        prev = at.plan.map((layer) => layer.map((p) => Array.from(p)));
      }
    });
  }

  it('h2o, chunk by chunk: an entry scores the attention every query so far paid it while it was kept', async () => {
    const chunk = 12,
      budget = 10,
      window = 3;
    const press = makePress('h2o', { budget, window });
    const G = cfg.numHeads / cfg.numKvHeads,
      d = cfg.headDim;
    const keptBefore: Kept[] = [];
    let prev: Kept = Array.from({ length: cfg.numLayers }, () => Array.from({ length: cfg.numKvHeads }, () => []));
    for (let s = 0; s < tokens.length; s += chunk) {
      const e = Math.min(tokens.length, s + chunk);
      keptBefore.push(prev);
      const at = await prefillAndCompress(model, tokens.subarray(0, e), press, { chunkCompress: chunk, kvDtype: 'f32' });
      const sees = (l: number, kv: number, qPos: number, kPos: number) =>
        kPos <= qPos && (kPos >= Math.floor(qPos / chunk) * chunk || keptBefore[Math.floor(qPos / chunk)][l][kv].includes(kPos));
      const ref = referenceForward(cfg, w, {
        tokens: tokens.subarray(0, e),
        lastOnly: true,
        visible: (l, qh, q, k) => sees(l, Math.floor(qh / G), q, k),
      });
      const byPosition: number[][][] = [];
      const want = prev.map((layer, l) =>
        layer.map((kept, kv) => {
          const entries = [...kept, ...Array.from({ length: e - s }, (_, i) => s + i)];
          const scores: number[] = [];
          (byPosition[l] ??= [])[kv] = scores;
          if (entries.length <= budget) return entries;
          // per query head, the column sums over every row so far, on the positions it could see
          const perHead = Array.from({ length: G }, (_, g) => {
            const sum = new Map<number, number>();
            for (let r = 0; r < e; r++) {
              const vis = Array.from({ length: r + 1 }, (_, k) => k).filter((k) => sees(l, kv, r, k));
              const logits = vis.map((k) => {
                let dot = 0;
                for (let i = 0; i < d; i++) dot += ref.queries[l][r][(kv * G + g) * d + i] * ref.keys[l][k][kv * d + i];
                return dot / Math.sqrt(d);
              });
              const m = Math.max(...logits);
              const z = logits.reduce((a, x) => a + Math.exp(x - m), 0);
              vis.forEach((k, i) => sum.set(k, (sum.get(k) ?? 0) + Math.exp(logits[i] - m) / z));
            }
            return sum;
          });
          const candidates = entries.slice(0, entries.length - window);
          candidates.forEach((p) => (scores[p] = perHead.reduce((a, m) => a + (m.get(p) ?? 0), 0) / G));
          const chosen = bfTopK(
            candidates.map((p) => scores[p]),
            budget - window,
          ).map((j) => candidates[j]);
          return [...chosen, ...entries.slice(entries.length - window)];
        }),
      );
      assertPlanMatches(at.plan, want, byPosition, `h2o cut at ${e}`);
      prev = at.plan.map((layer) => layer.map((p) => Array.from(p)));
    }
  });

  it('expected-attention carries its query statistics across chunks and keeps the budget', async () => {
    const ctx = await prefillAndCompress(model, tokens, makePress('expected-attention', { budget: 12 }), { chunkCompress: 16 });
    for (const layer of ctx.plan) for (const p of layer) assert.equal(p.length, 12);
    assert.deepEqual(Array.from(ctx.plan[0][0].subarray(0, 4)), [0, 1, 2, 3], 'the sinks stay');
  });

  it('streaming and knorm (cache-only scorers) and pyramidkv (uneven layers) follow their definitions cut by cut', async () => {
    const chunk = 12,
      budget = 9;
    const stream = await prefillAndCompress(model, tokens, makePress('streaming', { budget, sinks: 2 }), { chunkCompress: chunk });
    const wantStream = bruteChunked(cfg, w, tokens, chunk, (entries) =>
      entries.length <= budget ? entries : [...entries.slice(0, 2), ...entries.slice(entries.length - (budget - 2))],
    );
    stream.plan.forEach((layer, l) => layer.forEach((p, h) => assert.deepEqual(Array.from(p), wantStream[l][h])));
    const knorm = await prefillAndCompress(model, tokens, makePress('knorm', { budget }), { chunkCompress: chunk });
    const wantKnorm = bruteChunked(cfg, w, tokens, chunk, (entries, l, h, ref) => {
      if (entries.length <= budget) return entries;
      const d = cfg.headDim;
      const norm = (p: number) => Math.hypot(...ref.keys[l][p].subarray(h * d, (h + 1) * d));
      return bfTopK(
        entries.map((p) => -norm(p)),
        budget,
      ).map((j) => entries[j]);
    });
    knorm.plan.forEach((layer, l) => layer.forEach((p, h) => assert.deepEqual(Array.from(p), wantKnorm[l][h])));
    const pyr = await prefillAndCompress(model, tokens, makePress('pyramidkv', { budget: 12, window: 4 }), { chunkCompress: 16 });
    const lens = pyr.plan.map((layer) => layer[0].length);
    assert.ok(lens[0] > lens[lens.length - 1], `pyramid budgets fall with depth: ${lens}`);
    assert.equal(
      lens.reduce((a, b) => a + b, 0),
      12 * cfg.numLayers,
    );
  });

  it('lookahead and trained sources score at every cut (laq runs on an evicted cache)', async () => {
    const ctx = await prefillAndCompress(model, tokens, makePress('laq', { budget: 12, window: 4, lookahead: 3 }), { chunkCompress: 16 });
    for (const layer of ctx.plan) for (const p of layer) assert.equal(p.length, 12);
  });

  it("a last chunk shorter than the window borrows the window's first rows from the chunk before, even one that was not cut", async () => {
    const press = makePress('snapkv', { budget: 10, window: 4 });
    // chunks [0, 8) (8 <= 10: kept whole) and [8, 11): the window 7..10 starts in the first
    const ctx = await prefillAndCompress(model, tokens.subarray(0, 11), press, { chunkCompress: 8 });
    for (const layer of ctx.plan) for (const p of layer) assert.deepEqual(Array.from(p.subarray(6)), [7, 8, 9, 10]);
  });

  it('one chunk holding the whole prompt is the one-shot compression', async () => {
    const press = makePress('adakv', { budget: 14, window: 4 });
    const one = await prefillAndCompress(model, tokens, press, { chunkCompress: tokens.length });
    const shot = await prefillAndCompress(model, tokens, press);
    assert.deepEqual(one.plan, shot.plan);
  });

  it('methods that need the whole prompt, ratios and chunks smaller than the window are refused in one line', async () => {
    for (const [press, chunk, pattern] of [
      [makePress('kvzip', { budget: 12 }), 16, /kvzip cannot compress a prompt chunk by chunk/],
      [makePress('defensivekv', { budget: 12, window: 4 }), 16, /defensivekv cannot compress/],
      [makePress('snapkv', { ratio: 0.5, window: 4 }), 16, /--chunk-compress needs --budget, not --ratio/],
      [makePress('snapkv', { budget: 12, window: 8 }), 6, /--chunk-compress 6 is smaller than snapkv's window 8/],
    ] as const) {
      await assert.rejects(
        () => prefillAndCompress(model, tokens, press, { chunkCompress: chunk }),
        (e: Error) => e instanceof KvevictError && pattern.test(e.message),
      );
    }
  });
});

describe('--chunk-compress on the command line', () => {
  it('generate and compress take it; the peak is bounded; bad values get one line and exit code 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvevict-chunked-'));
    try {
      writeRandomModelDir(dir, tinyRawConfig('llama', { vocab_size: 259 }), { seed: 3, scale: 0.15 });
      const text = 'The red box holds two coins and the blue box holds seven keys. '.repeat(4);
      const chunked = { press: 'snapkv:window=8', budget: 24, 'chunk-compress': 32, json: true };
      const r = cli(['generate', ...flags({ model: dir, prompt: text, ...chunked, 'max-new-tokens': 3 })]);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { memory: { peakCacheBytes: number; fullCacheBytes: number }; promptTokens: number[] };
      const perToken = out.memory.fullCacheBytes / out.promptTokens.length;
      assert.ok(out.promptTokens.length > 2 * (24 + 32), 'a prompt well past budget + chunk');
      assert.ok(out.memory.peakCacheBytes <= (24 + 32) * perToken, `peak ${out.memory.peakCacheBytes / perToken} entries a head`);
      const file = join(dir, 'c.txt');
      writeFileSync(file, text);
      const c = cli(['compress', ...flags({ model: dir, 'context-file': file, ...chunked, out: join(dir, 'c.kvc') })]);
      assert.equal(c.status, 0, c.stderr);
      assert.ok((JSON.parse(c.stdout) as { peakCacheBytes: number }).peakCacheBytes <= (24 + 32) * perToken);
      for (const [args, pattern] of [
        [['--chunk-compress', '16'], /--chunk-compress needs --press/],
        [['--press', 'kvzip', '--budget', '24', '--chunk-compress', '16'], /kvzip cannot compress a prompt chunk by chunk/],
        [['--press', 'snapkv', '--budget', '40', '--chunk-compress', '16'], /--chunk-compress 16 is smaller than snapkv's window 32/],
      ] as [string[], RegExp][]) {
        const b = cli(['generate', '--model', dir, '--prompt', text, ...args]);
        assert.equal(b.status, 2, b.stderr);
        assert.match(b.stderr, pattern);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('eval --chunk-compress', () => {
  it('each setting compresses its own prompt chunk by chunk; rows carry peak_cache_bytes; a one-shot folder is not mixed in', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvevict-chunked-eval-'));
    try {
      const model = join(dir, 'model');
      writeRandomModelDir(model, tinyRawConfig('llama', { vocab_size: 259 }), { seed: 3, scale: 0.15 });
      const cases = join(dir, 'cases.jsonl');
      writeFileSync(
        cases,
        JSON.stringify({ id: 'one', context: 'The key is 4412. '.repeat(12), question: 'What is the key?', answers: ['4412'] }) + '\n',
      );
      const run = (out: string, extra: string[]) =>
        cli([
          'eval',
          ...flags({ dataset: cases, model, press: 'snapkv:window=8', budget: 24, mode: 'query-aware,query-agnostic', out, json: true }),
          ...extra,
        ]);
      const chunked = join(dir, 'chunked'),
        oneShot = join(dir, 'one-shot');
      assert.equal(run(chunked, ['--chunk-compress', '32']).status, 0);
      assert.equal(run(oneShot, []).status, 0);
      const rows = (out: string) =>
        readFileSync(join(out, 'results.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { press: string; prompt_tokens: number; peak_cache_bytes?: number; cache_bytes: number });
      const perToken = (r: { cache_bytes: number }) => r.cache_bytes / 24;
      for (const r of rows(chunked).filter((x) => x.press === 'snapkv'))
        assert.ok(r.peak_cache_bytes! <= (24 + 32) * perToken(r), `peak ${r.peak_cache_bytes}`);
      for (const r of rows(oneShot).filter((x) => x.press === 'snapkv'))
        assert.ok(r.peak_cache_bytes! > (24 + 32) * perToken(r), 'one-shot holds the full prompt');
      const mixed = run(oneShot, ['--chunk-compress', '32']);
      assert.equal(mixed.status, 2);
      assert.match(mixed.stderr, /one-shot/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('compression during decoding', () => {
  const { cfg, model } = tinyModel({}, 5, 0.2);
  const prompt = promptTokens(30, 9);
  const entry = 2 * cfg.headDim * 4 + 4;

  it('every interval the cache is cut to the budget; the tokens are the greedy ones of that cache, step by step', async () => {
    const budget = 12,
      interval = 6,
      window = 4;
    const press = makePress('snapkv', { budget, window });
    const r = await runQueryAware(model, prompt, null, { maxNewTokens: 20, stopTokens: [], decodeCompress: { press, interval } });
    assert.equal(r.tokens.length, 20);
    assert.ok(r.finalCacheBytes <= cfg.numLayers * cfg.numKvHeads * (budget + interval) * entry, 'never past budget + interval');
    // the same run by hand from the library's parts: prefill, feed each greedy token, cut after every interval
    const p = prefill(model, prompt);
    const cache = p.cache;
    let logits = p.lastLogits;
    const ids = [...prompt];
    const argmax = (x: Float32Array) => x.reduce((b, v, i) => (v > x[b] ? i : b), 0);
    let rec = new PrefillRecorder(kernels(), cfg, cache, 0, ids.length + interval, { windowQueries: window });
    for (let i = 0; i < 20; i++) {
      const t = argmax(logits);
      assert.equal(r.tokens[i], t, `token ${i}`);
      ids.push(t);
      if (i === 19) break;
      logits = Float32Array.from(
        model.forward({ tokens: Int32Array.of(t), positions: Int32Array.of(ids.length - 1), cache, observer: rec.observer }),
      );
      if ((i + 1) % interval === 0) {
        const run = {
          model,
          cache,
          tokens: Int32Array.from(ids),
          promptLength: ids.length,
          startPosition: 0,
          lastLogits: logits,
          captured: rec.result(),
          eosTokenIds: [],
        };
        cache.retainAll(await press.compress(run));
        for (const layer of cache.layers) for (const h of layer) assert.equal(h.length, budget);
        rec = new PrefillRecorder(kernels(), cfg, cache, 0, ids.length + interval, { windowQueries: window });
      }
    }
  });

  it('query-agnostic too, and an interval below the window is refused', async () => {
    const press = makePress('snapkv', { budget: 10, window: 4 });
    const r = await runWithMode(model, 'query-agnostic', prompt, promptTokens(5, 2), makePress('snapkv', { budget: 16, window: 4 }), {
      maxNewTokens: 14,
      stopTokens: [],
      decodeCompress: { press, interval: 5 },
    });
    assert.ok(r.finalCacheBytes <= cfg.numLayers * cfg.numKvHeads * (10 + 5) * entry);
    await assert.rejects(
      () => runWithMode(model, 'query-aware', prompt, [], null, { maxNewTokens: 8, decodeCompress: { press, interval: 2 } }),
      /--decode-compress 2 is smaller than snapkv's window 4/,
    );
  });
});

describe('long prompts', () => {
  it('a 64K-token prompt on a Llama-3-RoPE-scaled model, chunk by chunk: bounded cache, every position, progress as it goes', async () => {
    const cfg = tinyConfig('llama3', { max_position_embeddings: 70000, num_hidden_layers: 1 });
    const model = new LlamaModel(cfg, randomWeights(cfg, 2, 0.1));
    const L = 65536,
      budget = 64,
      chunk = 2048;
    const tokens = promptTokens(L, 5);
    const seen: number[] = [];
    const ctx = await prefillAndCompress(model, tokens, makePress('snapkv', { budget, window: 16 }), {
      chunkCompress: chunk,
      progress: (done, total) => {
        assert.equal(total, L);
        seen.push(done);
      },
    });
    assert.equal(seen.length, L / chunk);
    assert.equal(seen[seen.length - 1], L);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] > seen[i - 1]);
    const entry = 2 * cfg.headDim * 4 + 4;
    assert.ok(ctx.cache.peakBytes <= cfg.numLayers * cfg.numKvHeads * (budget + chunk) * entry);
    assert.equal(ctx.nextPosition, L);
    const head = ctx.cache.head(0, 0);
    assert.equal(head.positions[head.length - 1], L - 1);
    assert.ok(ctx.lastLogits.every(Number.isFinite));
  });
});
