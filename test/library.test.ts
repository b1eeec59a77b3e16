/**
 * The library entry point (src/index.ts, package.json "main"): a tiny end-to-end through it alone, on a
 * random model folder written to disk; the README's library example, taken from the README and run as written
 * (on that folder).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import * as kvevict from '../src/index.js';
import {
  generateFromTokens,
  kernels,
  KvevictError,
  LlamaModel,
  loadModelDir,
  makePress,
  prefill,
  prefillAndCompress,
  PRESS_NAMES,
  runQueryAgnostic,
  runQueryAware,
  runWithMode,
  type KeepPlan,
  type KvCache,
} from '../src/index.js';
import { repoRoot } from '../src/paths.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';

// A context of about 560 byte tokens, so that budgets of 48 and 256 really evict.
const CONTEXT = Array.from({ length: 8 }, (_, i) => `Line ${i}: the lighthouse keeper counted ${i * 7 + 3} ships before the storm.`).join(
  ' ',
);
const QUESTION = 'How many ships did the keeper count on line 5?';

/** Entry size in bytes of the default cache: key + value (f16) + position (int32). */
function entryBytes(headDim: number): number {
  return 2 * headDim * 2 + 4;
}

function assertBudgetPlan(plan: KeepPlan, layers: number, kvHeads: number, budget: number, length: number, window: number): void {
  assert.equal(plan.length, layers);
  for (const heads of plan) {
    assert.equal(heads.length, kvHeads);
    for (const kept of heads) {
      assert.equal(kept.length, budget);
      for (let i = 1; i < kept.length; i++) assert.ok(kept[i] > kept[i - 1], 'sorted, unique');
      assert.ok(kept[0] >= 0 && kept[kept.length - 1] < length);
      // SnapKV keeps its observation window: the last `window` prompt positions
      for (let p = length - window; p < length; p++) assert.ok(kept.includes(p), `window position ${p} kept`);
    }
  }
}

/** Every kept entry holds the full cache's key and value at its position, bit for bit. */
function assertEntriesFrom(full: KvCache, compressed: KvCache): void {
  for (let l = 0; l < full.numLayers; l++) {
    for (let h = 0; h < full.numKvHeads; h++) {
      const f = full.head(l, h);
      const c = compressed.head(l, h);
      const d = f.headDim;
      for (let i = 0; i < c.length; i++) {
        const j = f.positions.subarray(0, f.length).indexOf(c.positions[i]);
        assert.ok(j >= 0);
        assert.deepEqual(c.keyData.subarray(i * d, (i + 1) * d), f.keyData.subarray(j * d, (j + 1) * d));
        assert.deepEqual(c.valueData.subarray(i * d, (i + 1) * d), f.valueData.subarray(j * d, (j + 1) * d));
      }
    }
  }
}

describe('library entry point', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvevict-library-'));
    writeRandomModelDir(dir, tinyRawConfig('llama', { vocab_size: 259 }), { seed: 11, scale: 0.15 }); // the byte tokenizer's size, as kvevict-ref
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('exports the public API', () => {
    for (const name of [
      'loadModelDir',
      'LlamaModel',
      'KvCache',
      'kernels',
      'jsKernels',
      'makePress',
      'parsePress',
      'PRESS_NAMES',
      'prefillAndCompress',
      'answer',
      'runQueryAware',
      'runQueryAgnostic',
      'runWithMode',
      'decode',
      'generateFromTokens',
      'runGrid',
      'runEvalJob',
      'scorePrediction',
      'writeReport',
      'loadSoftTokens',
      'saveSoftTokens',
      'pretrain',
      'trainJudgeq',
      'trainLookaheadkv',
      'loadLookaheadModules',
      'KvevictError',
      'defaultModelDir',
    ]) {
      assert.notEqual(typeof (kvevict as Record<string, unknown>)[name], 'undefined', name);
    }
    assert.equal(PRESS_NAMES.length, 22);
    assert.ok(new KvevictError('x') instanceof Error);
    assert.throws(() => makePress('no-such-press', { budget: 8 }), KvevictError);
    assert.match(kvevict.defaultModelDir, /models[\\/]kvevict-ref$/);
  });

  test('snapkv in both modes keeps exactly the budget per head; the answer is text', async () => {
    const m = loadModelDir(dir);
    const model = new LlamaModel(m.config, m.weights, kernels());
    const { numLayers, numKvHeads, headDim } = m.config;
    const tok = m.tokenizer;
    const context = tok.encode(CONTEXT);
    const question = tok.encode(`\n\n${QUESTION}`);
    const budget = 48;
    const window = 16;
    const press = makePress('snapkv', { budget, window });
    const opts = { maxNewTokens: 6, stopTokens: tok.eosTokenIds };

    const full = prefill(model, context).cache;
    const ctx = await prefillAndCompress(model, context, press);
    assertBudgetPlan(ctx.plan, numLayers, numKvHeads, budget, context.length, window);
    for (let l = 0; l < numLayers; l++) {
      for (let h = 0; h < numKvHeads; h++) assert.deepEqual(ctx.cache.head(l, h).positions.subarray(0, budget), ctx.plan[l][h]);
    }
    assert.equal(ctx.cacheBytes, numLayers * numKvHeads * budget * entryBytes(headDim));
    assert.equal(ctx.fullCacheBytes, numLayers * numKvHeads * context.length * entryBytes(headDim));
    assert.equal(ctx.nextPosition, context.length);
    assertEntriesFrom(full, ctx.cache);

    const prompt = [...context, ...question];
    const aware = await runQueryAware(model, prompt, press, opts);
    assertBudgetPlan(aware.plan, numLayers, numKvHeads, budget, prompt.length, window);
    assert.equal(aware.cacheBytes, numLayers * numKvHeads * budget * entryBytes(headDim));
    assert.ok(aware.tokens.length >= 1 && aware.tokens.length <= 6);
    assert.equal(typeof tok.decode(aware.tokens, { skipSpecialTokens: true }), 'string');

    const agnostic = await runQueryAgnostic(model, context, [question, tok.encode('\n\nWho counted?')], press, opts);
    assert.equal(agnostic.answers.length, 2);
    for (let l = 0; l < numLayers; l++) for (let h = 0; h < numKvHeads; h++) assert.equal(agnostic.context.cache.head(l, h).length, budget);
    // the same plan as compressing the context alone; each answer's cache is a copy (context + question + answer)
    assert.deepEqual(agnostic.context.plan, ctx.plan);
    const a0 = agnostic.answers[0];
    assert.equal(a0.cacheBytes, numLayers * numKvHeads * (budget + question.length + a0.tokens.length - 1) * entryBytes(headDim));
    assert.equal(typeof tok.decode(a0.tokens, { skipSpecialTokens: true }), 'string');
    // runWithMode: one result shape, the same tokens
    const viaMode = await runWithMode(model, 'query-agnostic', context, question, press, opts);
    assert.deepEqual(viaMode.tokens, a0.tokens);
    assert.equal(viaMode.promptLength, context.length + question.length);
  });

  test("the 'full' press decodes the same greedy tokens as plain generation, in both modes", async () => {
    const m = loadModelDir(dir);
    const model = new LlamaModel(m.config, m.weights, kernels());
    const tok = m.tokenizer;
    const context = tok.encode(CONTEXT);
    const question = tok.encode(`\n\n${QUESTION}`);
    const prompt = [...context, ...question];
    const opts = { maxNewTokens: 8, stopTokens: [] as number[] };
    const plain = generateFromTokens(model, prompt, opts);
    assert.equal(plain.tokens.length, 8);
    const aware = await runQueryAware(model, prompt, makePress('full'), opts);
    assert.deepEqual(aware.tokens, plain.tokens);
    assert.equal(aware.cacheBytes, aware.fullCacheBytes);
    // query-agnostic with nothing evicted: the question at the original positions is plain generation of the whole prompt
    const agnostic = await runQueryAgnostic(model, context, [question], makePress('full'), opts);
    assert.deepEqual(agnostic.answers[0].tokens, plain.tokens);
  });

  test("the README's library example runs as written (laq++, budget 256, both modes)", () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const code = /```ts\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('\n## Library\n')))?.[1];
    assert.ok(code, "the README's ## Library section has a ts block");
    const js = ts
      .transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
      .outputText.replace("from 'kvevict'", `from ${JSON.stringify(pathToFileURL(join(repoRoot, 'dist', 'src', 'index.js')).href)}`)
      .replace('loadModelDir(defaultModelDir)', `loadModelDir(${JSON.stringify(dir)})`)
      .replace("'...the long context...'", JSON.stringify(CONTEXT));
    const file = join(dir, 'readme-example.mjs');
    writeFileSync(file, js);
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const cfg = loadModelDir(dir).config;
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, r.stdout);
    const [full, kept] = /(\d+) -> (\d+) bytes$/.exec(lines[0])!.slice(1).map(Number);
    assert.equal(kept, cfg.numLayers * cfg.numKvHeads * 256 * entryBytes(cfg.headDim));
    assert.ok(full > kept, 'the context is longer than the budget');
  });
});
