/**
 * Judge Q: the training loss and its gradient against a float64 definition built on the reference forward
 * pass, training that lowers the loss, the soft-token file (round trip, refusal for another model), and the
 * press against a brute-force version of methods.md's definition (no soft entry left in the cache).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { param, type Tensor } from '../src/autograd/tensor.js';
import { KvevictError } from '../src/errors.js';
import { prefill, prefillAndCompress } from '../src/generate/pipeline.js';
import type { ModelConfig } from '../src/model/config.js';
import { LlamaModel } from '../src/model/llama.js';
import type { FloatWeights as Weights } from '../src/model/types.js';
import { makePress } from '../src/press/index.js';
import { SoftTokenQueries } from '../src/press/queries/soft-tokens.js';
import type { ScorePress } from '../src/press/score-press.js';
import type { AttentionScorer } from '../src/press/scorers/attention.js';
import { loadSoftTokens, modelHash, saveSoftTokens, type SoftTokens } from '../src/press/queries/soft-tokens-file.js';
import { AdamW } from '../src/train/adamw.js';
import { exampleLoss, type JudgeqExample, type Learned } from '../src/train/judgeq/objective.js';
import { AppendedRows } from '../src/model/appended-rows.js';
import { trainJudgeq } from '../src/train/judgeq/train.js';
import { writeJudgeqCard } from '../src/train/judgeq/card.js';
import { heldOutFidelity } from '../src/train/judgeq/hit-rate.js';
import { attentionMass, attentionRecall, oracleHitRate } from '../src/eval/fidelity.js';
import { loadModelDir } from '../src/model/load.js';
import { Rng } from '../src/util/rng.js';
import {
  assertPlanMatches,
  bfAttentionScores,
  bfTopK,
  prefillRun,
  promptTokens,
  withWindow,
  type BfQuery,
} from './helpers/press-reference.js';
import { randomWeights, tinyConfig, type TinyKind } from './helpers/random-model.js';
import { meanPromptAttention64 } from './reference/attention-f64.js';
import { referenceForward } from './reference/llama-f64.js';
import { tinyTrainingRun } from './helpers/appended-rows-run.js';

const dir = mkdtempSync(join(tmpdir(), 'kvevict-judgeq-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function tiny(kind: TinyKind, seed = 3, scale = 0.3): { cfg: ModelConfig; weights: Weights; model: LlamaModel } {
  const cfg = tinyConfig(kind);
  const weights = randomWeights(cfg, seed, scale);
  return { cfg, weights, model: new LlamaModel(cfg, weights) };
}

/** methods.md's Judge Q loss in float64, from two plain full forward passes (P + R and P + soft). */
function judgeqLoss64(cfg: ModelConfig, w: Weights, ex: JudgeqExample, soft: Float64Array): number {
  const L = ex.prompt.length,
    R = ex.response.length,
    D = cfg.hiddenSize,
    m = soft.length / D;
  const pr = referenceForward(cfg, w, { tokens: [...ex.prompt, ...ex.response] });
  const target = meanPromptAttention64(
    cfg,
    pr.queries,
    pr.keys,
    Array.from({ length: R }, (_, i) => L + i),
    L,
  );
  const emb = new Float64Array((L + m) * D);
  ex.prompt.forEach((t, r) => {
    for (let i = 0; i < D; i++) emb[r * D + i] = w.embed[t * D + i];
  });
  emb.set(soft, L * D);
  const ps = referenceForward(cfg, w, { embeddings: emb, lastOnly: true });
  const student = meanPromptAttention64(
    cfg,
    ps.queries,
    ps.keys,
    Array.from({ length: m }, (_, i) => L + i),
    L,
  );
  let s = 0,
    n = 0;
  for (let l = 0; l < cfg.numLayers; l++) {
    for (let h = 0; h < cfg.numHeads; h++)
      for (let j = 0; j < L; j++) {
        s += (student[l][h][j] - target[l][h][j]) ** 2;
        n++;
      }
  }
  return s / n;
}

const judgeqOf = (soft: Tensor): Learned => ({ rows: soft, lora: null, loss: 'mse' });

function example(seed: number, L: number, R: number): JudgeqExample {
  return { prompt: promptTokens(L, seed), response: promptTokens(R, seed + 100) };
}

describe('Judge Q loss', () => {
  for (const kind of ['llama', 'qwen2', 'qwen3'] as TinyKind[]) {
    it(`value and gradient w.r.t. the soft embeddings match float64 finite differences (${kind})`, () => {
      const { cfg, weights, model } = tiny(kind);
      const m = 3;
      const ex = example(5, 21, 6);
      const init = new Rng(11).normalArray(m * cfg.hiddenSize, 1);
      const soft = param(new Float32Array(init), [m, cfg.hiddenSize], 'soft');
      const res = exampleLoss(model, new AppendedRows(cfg, weights), judgeqOf(soft), ex, true);
      const x64 = Float64Array.from(init);
      const ref = judgeqLoss64(cfg, weights, ex, x64);
      assert.ok(ref > 1e-6, `the loss is not trivially small (${ref})`);
      assert.ok(Math.abs(res.loss - ref) <= 1e-4 * ref, `loss ${res.loss} vs float64 ${ref}`);
      const g = soft.grad!;
      let scale = 0;
      for (const v of g) scale = Math.max(scale, Math.abs(v));
      assert.ok(scale > 0, 'a gradient reached the soft embeddings');
      // central differences of the float64 loss: truncation error O(h^2), far below float32 noise
      const h = 1e-4;
      for (let i = 0; i < x64.length; i += 7) {
        const plus = x64.slice(),
          minus = x64.slice();
        plus[i] += h;
        minus[i] -= h;
        const fd = (judgeqLoss64(cfg, weights, ex, plus) - judgeqLoss64(cfg, weights, ex, minus)) / (2 * h);
        assert.ok(Math.abs(fd - g[i]) <= 2e-3 * scale, `element ${i}: autograd ${g[i]} vs finite difference ${fd} (max |g| ${scale})`);
      }
    });
  }

  it('the prompt cache is left as it was (response and soft rows leave no entry)', () => {
    const { cfg, weights, model } = tiny('llama');
    const ex = example(2, 30, 5);
    const { cache } = prefill(model, ex.prompt);
    const before = cache.clone();
    const soft = param(new Rng(1).normalArray(4 * cfg.hiddenSize, 1), [4, cfg.hiddenSize], 'soft');
    const fwd = new AppendedRows(cfg, weights);
    fwd.run(null, soft, cache);
    exampleLoss(model, fwd, judgeqOf(soft), ex, false);
    for (let l = 0; l < cfg.numLayers; l++) {
      for (let h = 0; h < cfg.numKvHeads; h++) {
        const a = cache.head(l, h),
          b = before.head(l, h);
        assert.equal(a.length, b.length);
        assert.deepEqual(a.positions.subarray(0, a.length), b.positions.subarray(0, b.length));
      }
    }
  });

  it('a few AdamW steps lower the loss on a small random model', () => {
    const { cfg, weights, model } = tiny('llama', 4, 0.2);
    const examples = [example(1, 40, 8), example(2, 33, 6)];
    const soft = param(new Rng(3).normalArray(4 * cfg.hiddenSize, 1), [4, cfg.hiddenSize], 'soft');
    const fwd = new AppendedRows(cfg, weights);
    const opt = new AdamW([soft], { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
    const lossOf = () => examples.reduce((s, ex) => s + exampleLoss(model, fwd, judgeqOf(soft), ex, false).loss, 0) / examples.length;
    const first = lossOf();
    for (let step = 0; step < 25; step++) {
      soft.zeroGrad();
      for (const ex of examples) exampleLoss(model, fwd, judgeqOf(soft), ex, true, 1 / examples.length);
      opt.step(0.05);
    }
    const last = lossOf();
    assert.ok(last < 0.7 * first, `loss ${first} -> ${last}`);
  });
});

/** Soft tokens for `weights` written to a file (random embeddings: the press only needs them to be fixed). */
function softFile(name: string, cfg: ModelConfig, weights: Weights, m = 5, seed = 21): string {
  const file = join(dir, name);
  saveSoftTokens(
    file,
    {
      embeddings: new Rng(seed).normalArray(m * cfg.hiddenSize, 1),
      count: m,
      hiddenSize: cfg.hiddenSize,
      modelHash: modelHash(cfg, weights),
    },
    { recipe: '{"test":true}' },
  );
  return file;
}

/** The soft rows' float64 queries per layer: the reference forward of [prompt embeddings; soft]. */
function softQueries64(
  cfg: ModelConfig,
  w: Weights,
  prompt: Int32Array,
  soft: SoftTokens,
): { q: Float64Array[][]; keys: Float64Array[][] } {
  const L = prompt.length,
    D = cfg.hiddenSize,
    m = soft.count;
  const emb = new Float64Array((L + m) * D);
  prompt.forEach((t, r) => {
    for (let i = 0; i < D; i++) emb[r * D + i] = w.embed[t * D + i];
  });
  emb.set(soft.embeddings, L * D);
  const ref = referenceForward(cfg, w, { embeddings: emb, lastOnly: true });
  return { q: ref.queries.map((rows) => rows.slice(L)), keys: ref.keys.map((rows) => rows.slice(0, L)) };
}

describe('soft-token file', () => {
  it('round-trips embeddings and metadata', () => {
    const { cfg, weights } = tiny('llama');
    const file = softFile('rt.safetensors', cfg, weights, 6);
    const s = loadSoftTokens(file);
    assert.equal(s.count, 6);
    assert.equal(s.hiddenSize, cfg.hiddenSize);
    assert.deepEqual(s.embeddings, new Rng(21).normalArray(6 * cfg.hiddenSize, 1));
    assert.equal(s.modelHash, modelHash(cfg, weights));
    assert.equal(s.metadata.recipe, '{"test":true}');
    assert.equal(s.metadata.soft_tokens, '6');
  });

  it('the model hash changes with any weight or the architecture, not with the eos ids', () => {
    const { cfg, weights } = tiny('llama');
    const h = modelHash(cfg, weights);
    assert.match(h, /^[0-9a-f]{64}$/);
    const other = randomWeights(cfg, 3, 0.3);
    assert.equal(modelHash(cfg, other), h, 'same seed, same values');
    const nudged = randomWeights(cfg, 3, 0.3);
    nudged.layers[1].down[17] += 1e-3;
    assert.notEqual(modelHash(cfg, nudged), h);
    assert.notEqual(modelHash({ ...cfg, ropeTheta: 20000 }, randomWeights(cfg, 3, 0.3)), h);
    assert.equal(modelHash({ ...cfg, eosTokenIds: [1, 2] }, randomWeights(cfg, 3, 0.3)), h);
  });

  it('malformed files are refused naming the file and the problem', () => {
    assert.throws(() => loadSoftTokens(join(dir, 'missing.safetensors')), /missing\.safetensors: soft-token file not found/);
    const noHash = join(dir, 'nohash.safetensors');
    saveSoftTokens(noHash, { embeddings: new Float32Array(8), count: 2, hiddenSize: 4, modelHash: 'abc' });
    assert.throws(() => loadSoftTokens(noHash), /nohash\.safetensors: metadata "model_hash"/);
  });

  it('soft tokens trained for another model are refused with a clear error', async () => {
    const a = tiny('llama', 3),
      b = tiny('llama', 4);
    const file = softFile('a.safetensors', a.cfg, a.weights);
    const press = makePress('judgeq', { budget: 12, window: 4, soft: file });
    await assert.rejects(
      prefillAndCompress(b.model, promptTokens(30, 2), press),
      (e: unknown) => e instanceof KvevictError && /a\.safetensors: soft tokens were trained for another model/.test(e.message),
    );
    const wide = tiny('qwen3');
    await assert.rejects(
      prefillAndCompress(
        wide.model,
        promptTokens(30, 2),
        makePress('judgeq', { budget: 12, window: 4, soft: softFile('n.safetensors', tiny('llama', 8).cfg, tiny('llama', 8).weights) }),
      ),
      (e: unknown) => e instanceof KvevictError && /trained for another model/.test(e.message),
    );
    // the same file works for its own model
    await prefillAndCompress(a.model, promptTokens(30, 2), press);
  });

  it('options: judgeq takes soft and no-window, not lookahead; a missing file is named', () => {
    assert.throws(() => makePress('judgeq', { budget: 64, lookahead: 3, soft: 'x' }), /press judgeq does not take option lookahead/);
    assert.throws(() => makePress('judgeq+window', { budget: 64, noWindow: true, soft: 'x' }), /does not take option no-window/);
    assert.throws(() => makePress('snapkv', { budget: 8, window: 4, soft: 'x' }), /press snapkv does not take option soft/);
    assert.throws(() => makePress('judgeq', { budget: 8, soft: 'x' }), /window 32 is larger than the budget 8/);
    assert.throws(() => makePress('judgeq', { budget: 8, soft: '' }), /soft must be a file name/);
    assert.throws(
      () => makePress('judgeq', { budget: 64, soft: join(dir, 'nope.safetensors') }),
      /nope\.safetensors: soft-token file not found/,
    );
  });
});

describe('judgeq press against brute force', () => {
  const { cfg, weights, model } = tiny('llama', 6, 0.15);
  const h = { cfg, model };
  const file = softFile('p.safetensors', cfg, weights, 5);
  const soft = loadSoftTokens(file);
  const tokens = promptTokens(40, 9);
  const L = tokens.length;
  const ref = softQueries64(cfg, weights, tokens, soft);
  const full = referenceForward(cfg, weights, { tokens });

  function expected(window: number, budget: number, withWindowQueries: boolean, extra: (l: number) => BfQuery[] = () => []) {
    const scores = ref.q.map((qs, l) => {
      const rows: BfQuery[] = [
        ...(withWindowQueries
          ? Array.from({ length: window }, (_, i) => ({ q: full.queries[l][L - window + i], limit: L - window + i }))
          : []),
        ...qs.map((q) => ({ q, limit: L - 1 })),
        ...extra(l),
      ];
      return bfAttentionScores(cfg, rows, ref.keys[l], { window, kernel: 7, pool: 'max', gqa: 'mean' });
    });
    return { scores, plan: scores.map((layer) => layer.map((s) => withWindow(bfTopK(s, budget - window), L, window))) };
  }

  it('judgeq: soft-token queries over every prompt key, pooled, window kept; soft entries removed', async () => {
    const press = makePress('judgeq', { budget: 14, window: 4, soft: file });
    const { run } = prefillRun(h, tokens, press);
    const before = run.cache.clone();
    const plan = await press.compress(run);
    const e = expected(4, 14, false);
    assertPlanMatches(plan, e.plan, e.scores, 'judgeq');
    for (let l = 0; l < cfg.numLayers; l++) {
      for (let k = 0; k < cfg.numKvHeads; k++) {
        const a = run.cache.head(l, k),
          b = before.head(l, k);
        assert.equal(a.length, L, 'no soft entry left in the prompt cache');
        assert.deepEqual(a.keyData.subarray(0, L * cfg.headDim), b.keyData.subarray(0, L * cfg.headDim));
      }
    }
  });

  it('judgeq --no-window keeps no window', async () => {
    const press = makePress('judgeq', { budget: 10, noWindow: true, soft: file });
    const { run } = prefillRun(h, tokens, press);
    const e = expected(0, 10, false);
    assertPlanMatches(await press.compress(run), e.plan, e.scores, 'judgeq w=0');
  });

  it('judgeq+window: the window queries and the soft queries together', async () => {
    const press = makePress('judgeq+window', { budget: 14, window: 5, soft: file });
    const { run } = prefillRun(h, tokens, press);
    const e = expected(5, 14, true);
    assertPlanMatches(await press.compress(run), e.plan, e.scores, 'judgeq+window');
  });

  it('judgeq+laq: the soft queries and the lookahead queries together', async () => {
    const press = makePress('judgeq+laq', { budget: 14, window: 4, lookahead: 3, soft: file });
    const { run } = prefillRun(h, tokens, press);
    const plan = await press.compress(run);
    // the lookahead queries themselves are checked against brute force in laq.test.ts
    const la = makePress('laq', { budget: 14, window: 4, lookahead: 3 });
    const src = ((la as ScorePress).scorer as AttentionScorer).o.sources[0];
    const { run: run2 } = prefillRun(h, tokens, la);
    const blocks = await src.queries(run2, 14);
    const qs = cfg.numHeads * cfg.headDim;
    const e = expected(4, 14, false, (l) =>
      Array.from({ length: blocks[l].positions.length }, (_, i) => ({
        q: Float64Array.from(blocks[l].queries.subarray(i * qs, (i + 1) * qs)),
        limit: L - 1,
      })),
    );
    assertPlanMatches(plan, e.plan, e.scores, 'judgeq+laq');
  });

  it('through the pipeline: the compressed cache holds B prompt entries per head and decoding continues at L', async () => {
    const press = makePress('judgeq', { budget: 12, window: 4, soft: file });
    const ctx = await prefillAndCompress(model, tokens, press);
    assert.equal(ctx.nextPosition, L);
    for (const layer of ctx.cache.layers) {
      for (const head of layer) {
        assert.equal(head.length, 12);
        for (let i = 0; i < head.length; i++) assert.ok(head.positions[i] < L, 'only prompt positions');
      }
    }
    assert.equal(ctx.cache.nextPosition, L);
  });

  it('the engine and the training forward give the soft rows the same queries', () => {
    const src = new SoftTokenQueries(soft);
    const { run } = prefillRun(h, tokens, makePress('judgeq', { budget: 12, window: 4, soft: file }));
    const blocks = src.queries(run);
    for (let l = 0; l < cfg.numLayers; l++) {
      for (let i = 0; i < blocks[l].queries.length; i++) {
        const r = Math.floor(i / (cfg.numHeads * cfg.headDim)),
          c = i % (cfg.numHeads * cfg.headDim);
        assert.ok(Math.abs(blocks[l].queries[i] - ref.q[l][r][c]) <= 1e-4 * (1 + Math.abs(ref.q[l][r][c])), `layer ${l} value ${i}`);
      }
      assert.deepEqual(Array.from(blocks[l].positions), [L, L + 1, L + 2, L + 3, L + 4]);
    }
  });
});

describe('train-judgeq', () => {
  const modelDir = join(dir, 'model');
  const base = tinyTrainingRun(modelDir);

  it('trains, resumes to the same result, writes a file the judgeq press accepts for its model only', async () => {
    const straight = trainJudgeq({ ...base, out: join(dir, 'straight.safetensors'), runDir: join(dir, 'run-straight') });
    assert.equal(straight.steps, 4);
    assert.ok(straight.complete);
    assert.ok(straight.history.filter((r) => r.heldOutLoss !== undefined).length >= 3, 'held-out loss at 0, 2 and 4');
    assert.ok(Number.isFinite(straight.finalHeldOutLoss));

    const runDir = join(dir, 'run-split');
    const first = trainJudgeq({ ...base, steps: 4, timeLimit: 1e-9, out: join(dir, 'split.safetensors'), runDir });
    assert.equal(first.steps, 0, 'the time limit stops before the first step');
    assert.equal(loadSoftTokens(join(dir, 'split.safetensors')).metadata.complete, 'false');
    const resumed = trainJudgeq({ ...base, resume: true, out: join(dir, 'split.safetensors'), runDir });
    assert.equal(resumed.steps, 4);
    assert.equal(resumed.responsesGenerated, 4, 'only the training responses are new: the first run cached the held-out ones');
    const a = loadSoftTokens(join(dir, 'straight.safetensors')),
      b = loadSoftTokens(join(dir, 'split.safetensors'));
    for (let i = 0; i < a.embeddings.length; i++) assert.ok(Math.abs(a.embeddings[i] - b.embeddings[i]) <= 1e-6, `value ${i}`);
    assert.equal(b.metadata.complete, 'true');
    assert.equal(JSON.parse(b.metadata.recipe).softTokens, 4);
    assert.throws(
      () => trainJudgeq({ ...base, lr: 0.5, resume: true, out: join(dir, 'split.safetensors'), runDir }),
      /made with lr = 0\.02, not 0\.5/,
    );

    const loaded = loadModelDir(modelDir);
    const model = new LlamaModel(loaded.config, loaded.weights);
    const ctx = await prefillAndCompress(
      model,
      promptTokens(50, 4),
      makePress('judgeq', { budget: 16, window: 4, soft: join(dir, 'straight.safetensors') }),
    );
    assert.equal(ctx.cache.head(0, 0).length, 16);
    const other = tiny('llama', 9, 0.1);
    await assert.rejects(
      prefillAndCompress(
        other.model,
        promptTokens(50, 4),
        makePress('judgeq', { budget: 16, window: 4, soft: join(dir, 'straight.safetensors') }),
      ),
      /trained for another model/,
    );
  });
});

describe('the Judge Q card', () => {
  const modelDir = join(dir, 'card-model');
  const base = tinyTrainingRun(modelDir);

  it("says how to use a model folder's own file, and counts only the rows of the file as it is", async () => {
    const out = join(modelDir, 'judgeq.safetensors'),
      runDir = join(dir, 'card-run');
    trainJudgeq({ ...base, out, runDir });
    const bytes = readFileSync(out),
      time = statSync(out).mtimeMs;
    // resuming the finished run (as `train-judgeq --resume --card` does) keeps the delivered file
    assert.ok(trainJudgeq({ ...base, resume: true, out, runDir }).complete);
    assert.deepEqual(readFileSync(out), bytes);
    assert.equal(statSync(out).mtimeMs, time);
    const card = {
      modelDir,
      softFile: out,
      runDir,
      heldOut: 2,
      budgets: [40],
      benchmarks: true,
      rulerSamples: 1,
      needleLengths: [200],
      progress: { write: () => true },
    };
    const first = readFileSync(await writeJudgeqCard(card), 'utf8');
    assert.match(
      first,
      /They are the default of `soft` on this model: `kvevict generate\|inspect\|eval --model \S+ --press judgeq --budget B`/,
    );
    const cases = (text: string) => [...text.matchAll(/^\| (\S+) \| (query-\S+) \| (\d+) \|/gm)].map((m) => m.slice(1).join(' '));
    assert.ok(
      cases(first).some((c) => c.startsWith('judgeq query-aware')),
      first,
    );
    // a newer version of the file: its rows are computed again, and the tables count this version's only
    utimesSync(out, new Date(), new Date(time + 60_000));
    const second = readFileSync(await writeJudgeqCard(card), 'utf8');
    assert.deepEqual(cases(second), cases(first));
  });
});

describe('held-out fidelity', () => {
  it('hit rate and recall use the queries of the rows that chose the response, as a float64 trace gives them', async () => {
    const { cfg, weights, model } = tiny('llama', 6, 0.15);
    const ex = example(12, 48, 5);
    const L = ex.prompt.length;
    const cells = await heldOutFidelity(
      model,
      [ex, example(13, 10, 3)],
      [{ label: 'snapkv', name: 'snapkv', options: { window: 4 } }],
      [16, 24],
    );
    const ref = referenceForward(cfg, weights, { tokens: [...ex.prompt, ...ex.response] });
    const d = cfg.headDim;
    const trace = {
      layers: cfg.numLayers,
      heads: cfg.numHeads,
      kvHeads: cfg.numKvHeads,
      headDim: d,
      length: L,
      keys: ref.keys.map((rows) =>
        Array.from({ length: cfg.numKvHeads }, (_, h) =>
          Float32Array.from(rows.slice(0, L).flatMap((k) => Array.from(k.subarray(h * d, (h + 1) * d)))),
        ),
      ),
      queries: Array.from({ length: ex.response.length }, (_, i) => ref.queries.map((rows) => Float32Array.from(rows[L - 1 + i]))),
    };
    const mass = attentionMass(trace);
    for (const b of [16, 24]) {
      const ctx = await prefillAndCompress(model, ex.prompt, makePress('snapkv', { budget: b, window: 4 }), { kvDtype: 'f32' });
      const cell = cells.find((c) => c.budget === b)!;
      assert.equal(cell.n, 1, 'the 10-token prompt fits in the budget and does not count');
      assert.ok(Math.abs(cell.hitRate - 100 * oracleHitRate(mass, ctx.plan)) < 1e-6, `hit rate at ${b}: ${cell.hitRate}`);
      assert.ok(Math.abs(cell.recall - 100 * attentionRecall(mass, ctx.plan)) < 1e-3, `recall at ${b}: ${cell.recall}`);
    }
  });
});
