/**
 * LookaheadKV: the KL training loss and its gradient (lookahead embeddings and every LoRA matrix) against
 * float64 finite differences of a definition built on the reference forward pass with the LoRA update merged
 * into the lookahead rows' weights; the press against a brute-force version of methods.md's definition; the
 * file (round trip, refusal for another model and malformed files); and `train-lookaheadkv` end to end.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { param } from '../src/autograd/tensor.js';
import { KvevictError } from '../src/errors.js';
import { prefillAndCompress } from '../src/generate/pipeline.js';
import { AppendedRows, LORA_TARGETS, loraShape, type Lora, type LoraTarget } from '../src/model/appended-rows.js';
import type { ModelConfig } from '../src/model/config.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadModelDir } from '../src/model/load.js';
import type { FloatWeights as Weights } from '../src/model/types.js';
import { makePress, parsePress, pressFromSpec } from '../src/press/index.js';
import { loadLookaheadModules, saveLookaheadModules, type LoraArrays } from '../src/press/queries/lookahead-adapter-file.js';
import { modelHash, saveSoftTokens } from '../src/press/queries/soft-tokens-file.js';
import { exampleLoss, type JudgeqExample } from '../src/train/judgeq/objective.js';
import { trainLookaheadkv } from '../src/train/judgeq/train.js';
import { Rng } from '../src/util/rng.js';
import { assertPlanMatches, bfPool, bfReduce, bfTopK, prefillRun, promptTokens, withWindow } from './helpers/press-reference.js';
import { randomWeights, tinyConfig, type TinyKind } from './helpers/random-model.js';
import { cli } from './helpers/cli.js';
import { meanPromptAttention64 } from './reference/attention-f64.js';
import { referenceForward } from './reference/llama-f64.js';
import { tinyTrainingRun } from './helpers/appended-rows-run.js';

const dir = mkdtempSync(join(tmpdir(), 'kvevict-lookaheadkv-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function tiny(kind: TinyKind, seed = 3, scale = 0.3): { cfg: ModelConfig; weights: Weights; model: LlamaModel } {
  const cfg = tinyConfig(kind);
  const weights = randomWeights(cfg, seed, scale);
  return { cfg, weights, model: new LlamaModel(cfg, weights) };
}

/** Random adapters on every target of every layer (B not zero, so the update matters). */
function randomLora(cfg: ModelConfig, rank: number, seed: number, scale = 0.3): LoraArrays[] {
  const rng = new Rng(seed);
  return Array.from({ length: cfg.numLayers }, () =>
    Object.fromEntries(
      LORA_TARGETS.map((t) => {
        const [out, inDim] = loraShape(cfg, t);
        return [t, { a: rng.normalArray(rank * inDim, scale), b: rng.normalArray(out * rank, scale) }];
      }),
    ),
  );
}

function loraTensors(arrays: LoraArrays[], rank: number, alpha: number): Lora {
  return {
    rank,
    alpha,
    layers: arrays.map((layer, l) =>
      Object.fromEntries(
        Object.entries(layer).map(([t, p]) => [
          t,
          { a: param(p.a.slice(), [rank, p.a.length / rank], `a${l}${t}`), b: param(p.b.slice(), [p.b.length / rank, rank], `b${l}${t}`) },
        ]),
      ),
    ),
  };
}

/** Float64 copies of the adapters: [layer][target] -> { a, b }. */
type Lora64 = Partial<Record<LoraTarget, { a: Float64Array; b: Float64Array }>>[];
const lora64 = (arrays: LoraArrays[]): Lora64 =>
  arrays.map((layer) =>
    Object.fromEntries(Object.entries(layer).map(([t, p]) => [t, { a: Float64Array.from(p.a), b: Float64Array.from(p.b) }])),
  );

/** W + (alpha / rank) B A for every adapter of a layer, in float64. */
function merged(cfg: ModelConfig, w: Weights, l: Lora64, rank: number, alpha: number): Partial<Record<LoraTarget, Float64Array>>[] {
  return l.map((layer, li) =>
    Object.fromEntries(
      Object.entries(layer).map(([t, p]) => {
        const [out, inDim] = loraShape(cfg, t as LoraTarget);
        const W = Float64Array.from(w.layers[li][t as LoraTarget] as Float32Array);
        for (let o = 0; o < out; o++)
          for (let i = 0; i < inDim; i++) {
            let s = 0;
            for (let r = 0; r < rank; r++) s += p.b[o * rank + r] * p.a[r * inDim + i];
            W[o * inDim + i] += (alpha / rank) * s;
          }
        return [t, W];
      }),
    ),
  );
}

/** Per layer [H][L]: the lookahead rows' mean attention on the prompt, from the reference forward of [prompt; rows] with LoRA merged on the rows. */
function lookaheadAttention64(
  cfg: ModelConfig,
  w: Weights,
  prompt: Int32Array,
  rows: Float64Array,
  l: Lora64,
  rank: number,
  alpha: number,
): number[][][] {
  const L = prompt.length,
    D = cfg.hiddenSize,
    m = rows.length / D;
  const emb = new Float64Array((L + m) * D);
  prompt.forEach((t, r) => {
    for (let i = 0; i < D; i++) emb[r * D + i] = w.embed[t * D + i];
  });
  emb.set(rows, L * D);
  const mw = merged(cfg, w, l, rank, alpha);
  const ref = referenceForward(cfg, w, { embeddings: emb, lastOnly: true, rowWeights: (layer, r) => (r >= L ? mw[layer] : undefined) });
  return meanPromptAttention64(
    cfg,
    ref.queries,
    ref.keys,
    Array.from({ length: m }, (_, i) => L + i),
    L,
  );
}

/** methods.md's LookaheadKV loss in float64: mean over layers and query heads of KL(normalized target || normalized prediction). */
function lookaheadLoss64(
  cfg: ModelConfig,
  w: Weights,
  ex: JudgeqExample,
  rows: Float64Array,
  l: Lora64,
  rank: number,
  alpha: number,
): number {
  const L = ex.prompt.length;
  const pr = referenceForward(cfg, w, { tokens: [...ex.prompt, ...ex.response] });
  const target = meanPromptAttention64(
    cfg,
    pr.queries,
    pr.keys,
    Array.from({ length: ex.response.length }, (_, i) => L + i),
    L,
  );
  const pred = lookaheadAttention64(cfg, w, ex.prompt, rows, l, rank, alpha);
  let s = 0;
  for (let layer = 0; layer < cfg.numLayers; layer++)
    for (let h = 0; h < cfg.numHeads; h++) {
      const t = target[layer][h],
        p = pred[layer][h];
      const ts = t.reduce((a, b) => a + b, 0),
        ps = p.reduce((a, b) => a + b, 0);
      for (let j = 0; j < L; j++) s += (t[j] / ts) * Math.log(t[j] / ts / (p[j] / ps));
    }
  return s / (cfg.numLayers * cfg.numHeads);
}

describe('LookaheadKV loss', () => {
  for (const kind of ['llama', 'qwen3'] as TinyKind[]) {
    it(`value and gradient w.r.t. the lookahead embeddings and every LoRA matrix match float64 finite differences (${kind})`, () => {
      const { cfg, weights, model } = tiny(kind);
      const m = 3,
        rank = 2,
        alpha = 4;
      const ex = { prompt: promptTokens(19, 5), response: promptTokens(5, 105) };
      const init = new Rng(11).normalArray(m * cfg.hiddenSize, 1);
      const arrays = randomLora(cfg, rank, 13);
      const rows = param(new Float32Array(init), [m, cfg.hiddenSize], 'rows');
      const lora = loraTensors(arrays, rank, alpha);
      const res = exampleLoss(model, new AppendedRows(cfg, weights), { rows, lora, loss: 'kl' }, ex, true);
      const x64 = Float64Array.from(init);
      const l64 = lora64(arrays);
      const f = () => lookaheadLoss64(cfg, weights, ex, x64, l64, rank, alpha);
      const ref = f();
      assert.ok(ref > 1e-4, `the loss is not trivially small (${ref})`);
      assert.ok(Math.abs(res.loss - ref) <= 1e-4 * ref, `loss ${res.loss} vs float64 ${ref}`);
      // central differences: perturb one float64 value in place, evaluate, restore
      const h = 1e-4;
      const probe = (what: string, x: Float64Array, g: Float32Array, count: number) => {
        let scale = 0;
        for (const v of g) scale = Math.max(scale, Math.abs(v));
        assert.ok(scale > 0, `a gradient reached ${what}`);
        const step = Math.max(1, Math.floor(x.length / count));
        for (let i = 0; i < x.length; i += step) {
          const v = x[i];
          x[i] = v + h;
          const plus = f();
          x[i] = v - h;
          const minus = f();
          x[i] = v;
          const fd = (plus - minus) / (2 * h);
          assert.ok(
            Math.abs(fd - g[i]) <= 3e-3 * scale,
            `${what} element ${i}: autograd ${g[i]} vs finite difference ${fd} (max |g| ${scale})`,
          );
        }
      };
      probe('the lookahead embeddings', x64, rows.grad!, 6);
      for (const t of ['q', 'v', 'o', 'down'] as LoraTarget[]) {
        const layer = t === 'down' ? 0 : cfg.numLayers - 2;
        probe(`layer ${layer} ${t}.a`, l64[layer][t]!.a, lora.layers[layer][t]!.a.grad!, 3);
        probe(`layer ${layer} ${t}.b`, l64[layer][t]!.b, lora.layers[layer][t]!.b.grad!, 3);
      }
    });
  }
});

/** A LookaheadKV file for `weights` with random embeddings and adapters. */
function modulesFile(name: string, cfg: ModelConfig, weights: Weights, m = 4, rank = 2, targets: LoraTarget[] = [...LORA_TARGETS]): string {
  const file = join(dir, name);
  const all = randomLora(cfg, rank, 31, 0.4);
  const lora = all.map((layer) => Object.fromEntries(targets.map((t) => [t, layer[t]!])));
  saveLookaheadModules(
    file,
    {
      embeddings: new Rng(21).normalArray(m * cfg.hiddenSize, 1),
      count: m,
      hiddenSize: cfg.hiddenSize,
      numLayers: cfg.numLayers,
      rank,
      alpha: 8,
      targets,
      lora,
      modelHash: modelHash(cfg, weights),
    },
    (t) => loraShape(cfg, t),
    { recipe: '{"test":true}' },
  );
  return file;
}

describe('lookaheadkv press against brute force', () => {
  const { cfg, weights, model } = tiny('llama', 6, 0.15);
  const h = { cfg, model };
  const file = modulesFile('p.safetensors', cfg, weights, 4, 2, ['q', 'k', 'o', 'up']);
  const mods = loadLookaheadModules(file);
  const tokens = promptTokens(40, 9);
  const L = tokens.length;
  const att = lookaheadAttention64(cfg, weights, tokens, Float64Array.from(mods.embeddings), lora64(mods.lora), mods.rank, mods.alpha);

  function expected(window: number, budget: number, gqa: 'mean' | 'max') {
    const G = cfg.numHeads / cfg.numKvHeads;
    const scores = att.map((layer) =>
      Array.from({ length: cfg.numKvHeads }, (_, kv) =>
        bfReduce(
          layer.slice(kv * G, (kv + 1) * G).map((a) => bfPool(a, L - window, 7, 'max')),
          gqa,
        ),
      ),
    );
    return { scores, plan: scores.map((layer) => layer.map((s) => withWindow(bfTopK(s, budget - window), L, window))) };
  }

  it('the lookahead rows (LoRA on them only) score every prompt entry, pooled, window kept; the cache is untouched', async () => {
    const press = makePress('lookaheadkv', { budget: 14, window: 4, modules: file });
    const { run } = prefillRun(h, tokens, press);
    const before = run.cache.clone();
    const e = expected(4, 14, 'mean');
    assertPlanMatches(await press.compress(run), e.plan, e.scores, 'lookaheadkv');
    for (let l = 0; l < cfg.numLayers; l++)
      for (let k = 0; k < cfg.numKvHeads; k++) {
        assert.equal(run.cache.head(l, k).length, L, 'no lookahead entry left in the prompt cache');
        assert.deepEqual(run.cache.head(l, k).keyData.subarray(0, L * cfg.headDim), before.head(l, k).keyData.subarray(0, L * cfg.headDim));
      }
  });

  it('no-window keeps no window; gqa=max reduces the group by its maximum', async () => {
    for (const [opts, e] of [
      [{ budget: 10, noWindow: true }, expected(0, 10, 'mean')],
      [{ budget: 12, window: 3, gqa: 'max' }, expected(3, 12, 'max')],
    ] as const) {
      const press = makePress('lookaheadkv', { ...opts, modules: file });
      const { run } = prefillRun(h, tokens, press);
      assertPlanMatches(await press.compress(run), e.plan, e.scores, `lookaheadkv ${JSON.stringify(opts)}`);
    }
  });

  it('without its LoRA the scores are those of plain appended rows (the adapters change what is kept)', async () => {
    const plain = lookaheadAttention64(cfg, weights, tokens, Float64Array.from(mods.embeddings), [], mods.rank, mods.alpha);
    let differs = 0;
    for (let l = 0; l < cfg.numLayers; l++) for (let j = 0; j < L; j++) if (Math.abs(plain[l][0][j] - att[l][0][j]) > 1e-3) differs++;
    assert.ok(differs > L / 2, `the adapters move the attention (${differs} of ${L * cfg.numLayers} entries)`);
  });

  it('through the pipeline and the press string: B entries per head, decoding continues at L', async () => {
    const ctx = await prefillAndCompress(model, tokens, pressFromSpec(parsePress(`lookaheadkv:modules=${file}:window=4`), { budget: 12 }));
    assert.equal(ctx.nextPosition, L);
    for (const layer of ctx.cache.layers) for (const head of layer) assert.equal(head.length, 12);
  });
});

describe('LookaheadKV file', () => {
  it('round-trips embeddings, adapters and metadata', () => {
    const { cfg, weights } = tiny('llama');
    const file = modulesFile('rt.safetensors', cfg, weights, 3, 2, ['v', 'gate']);
    const m = loadLookaheadModules(file);
    assert.deepEqual(
      [m.count, m.hiddenSize, m.numLayers, m.rank, m.alpha, m.targets],
      [3, cfg.hiddenSize, cfg.numLayers, 2, 8, ['v', 'gate']],
    );
    assert.deepEqual(m.embeddings, new Rng(21).normalArray(3 * cfg.hiddenSize, 1));
    const all = randomLora(cfg, 2, 31, 0.4);
    assert.deepEqual(m.lora[1].gate, all[1].gate);
    assert.equal(m.metadata.recipe, '{"test":true}');
  });

  it('modules trained for another model are refused with one line naming the file and the command', async () => {
    const { cfg, weights } = tiny('llama', 3);
    const other = tiny('llama', 4);
    const file = modulesFile('other.safetensors', cfg, weights);
    const press = makePress('lookaheadkv', { budget: 12, window: 4, modules: file });
    const { run } = prefillRun({ cfg: other.cfg, model: other.model }, promptTokens(30, 2), press);
    await assert.rejects(
      async () => press.compress(run),
      (e: Error) => e instanceof KvevictError && e.message.includes(file) && /another model.*train-lookaheadkv --model DIR/.test(e.message),
    );
    const wide = tinyConfig('qwen3');
    const wideFile = modulesFile('wide.safetensors', wide, randomWeights(wide, 1, 0.1));
    const p2 = makePress('lookaheadkv', { budget: 12, window: 4, modules: wideFile });
    const { run: run2 } = prefillRun({ cfg: other.cfg, model: other.model }, promptTokens(30, 2), p2);
    await assert.rejects(async () => p2.compress(run2), KvevictError);
  });

  it('a missing or malformed file is named; a Judge Q file is not taken for one', () => {
    assert.throws(
      () => makePress('lookaheadkv', { budget: 8, window: 4, modules: join(dir, 'none.safetensors') }),
      /none\.safetensors: LookaheadKV file not found/,
    );
    const { cfg, weights } = tiny('llama');
    const soft = join(dir, 'soft.safetensors');
    saveSoftTokens(soft, {
      embeddings: new Float32Array(2 * cfg.hiddenSize),
      count: 2,
      hiddenSize: cfg.hiddenSize,
      modelHash: modelHash(cfg, weights),
    });
    assert.throws(() => loadLookaheadModules(soft), /soft\.safetensors: no tensor "lookahead_embeddings" \(not a LookaheadKV file\)/);
    const r = cli(['generate', '--press', `lookaheadkv:modules=${join(dir, 'none.safetensors')}`, '--budget', '40', '--prompt', 'hi']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /none\.safetensors: LookaheadKV file not found/);
  });
});

describe('train-lookaheadkv', () => {
  const modelDir = join(dir, 'model');
  const base = {
    ...tinyTrainingRun(modelDir),
    lr: 0.01,
    trainPrompts: 6,
    loraRank: 2,
    loraAlpha: 4,
    loraTargets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as LoraTarget[],
  };

  it('trains (held-out loss falls), resumes to the same file, and writes modules the press accepts for its model only', async () => {
    const outA = join(dir, 'a.safetensors'),
      outB = join(dir, 'b.safetensors');
    const a = trainLookaheadkv({ ...base, out: outA, runDir: join(dir, 'runA') });
    assert.ok(a.complete);
    assert.ok(a.finalHeldOutLoss < a.initialHeldOutLoss, `held-out KL ${a.initialHeldOutLoss} -> ${a.finalHeldOutLoss}`);
    // stopped by the time limit before the first step (checkpointed), then resumed to the end: as one run
    const first = trainLookaheadkv({ ...base, out: outB, runDir: join(dir, 'runB'), timeLimit: 1e-9 });
    assert.equal(first.steps, 0);
    assert.equal(loadLookaheadModules(outB).metadata.complete, 'false');
    const b = trainLookaheadkv({ ...base, out: outB, runDir: join(dir, 'runB'), resume: true });
    assert.equal(b.steps, 4);
    const ma = loadLookaheadModules(outA),
      mb = loadLookaheadModules(outB);
    const close = (x: Float32Array, y: Float32Array, what: string) => {
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= 1e-6, `${what} value ${i}: ${x[i]} vs ${y[i]}`);
    };
    close(mb.embeddings, ma.embeddings, 'embeddings');
    close(mb.lora[1].down!.a, ma.lora[1].down!.a, 'layer 1 down.a');
    close(mb.lora[1].down!.b, ma.lora[1].down!.b, 'layer 1 down.b');
    assert.notDeepEqual(Array.from(ma.lora[0].q!.b), new Array(ma.lora[0].q!.b.length).fill(0), 'B moved from zero');
    const loaded = loadModelDir(modelDir);
    const model = new LlamaModel(loaded.config, loaded.weights);
    const ctx = await prefillAndCompress(model, promptTokens(60, 4), makePress('lookaheadkv', { budget: 16, window: 4, modules: outA }));
    assert.equal(ctx.cache.head(0, 0).length, 16);
    // a resume with other LoRA options is refused, naming the field
    assert.throws(
      () => trainLookaheadkv({ ...base, loraRank: 3, out: outB, runDir: join(dir, 'runB'), resume: true }),
      /loraRank = 2, not 3/,
    );
  });

  it('the command: bad options get one line and exit code 2', () => {
    const r = cli(['train-lookaheadkv', '--model', modelDir, '--out', join(dir, 'c.safetensors'), '--lora-targets', 'q,zz']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /train-lookaheadkv: --lora-targets: unknown LoRA target "zz"/);
    const r2 = cli(['train-lookaheadkv', '--model', modelDir, '--out', join(dir, 'c.safetensors'), '--lora-rank', '0']);
    assert.equal(r2.status, 2);
    assert.match(r2.stderr, /--lora-rank must be an integer >= 1/);
  });
});
