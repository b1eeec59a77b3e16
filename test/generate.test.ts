import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from '../src/generate/decode.js';
import { generateFromTokens, prefill } from '../src/generate/pipeline.js';
import { argmax, greedy, makeSampler, samplingSupport, topLogprobs, type SamplingOptions } from '../src/generate/sampling.js';
import { jsKernels } from '../src/kernels/index.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadModelDir } from '../src/model/load.js';
import { randomWeights, tinyConfig, tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { referenceForward } from './reference/llama-f64.js';
import { cli } from './helpers/cli.js';

function tinyModel(seed = 3): LlamaModel {
  const cfg = tinyConfig('llama');
  return new LlamaModel(cfg, randomWeights(cfg, seed, 0.15), jsKernels);
}

/** Probabilities of the definition, brute force: softmax(l / T), then top-k, then top-p, renormalised. */
function bruteForceDistribution(logits: number[], o: SamplingOptions): number[] {
  const e = logits.map((l) => Math.exp(l / o.temperature));
  const z = e.reduce((a, b) => a + b, 0);
  let probs = e.map((x) => x / z);
  const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  const keep = new Set<number>();
  const k = o.topK && o.topK > 0 ? o.topK : logits.length;
  const kept = order.slice(0, k);
  const zk = kept.reduce((a, i) => a + probs[i], 0);
  let cum = 0;
  for (const i of kept) {
    keep.add(i);
    cum += probs[i] / zk;
    if (cum >= (o.topP ?? 1)) break;
  }
  probs = probs.map((p, i) => (keep.has(i) ? p : 0));
  const zz = probs.reduce((a, b) => a + b, 0);
  return probs.map((p) => p / zz);
}

describe('sampling', () => {
  test('greedy picks the argmax, ties to the lowest id', () => {
    assert.equal(argmax(Float32Array.of(0.1, 3, -2, 3, 1)), 1);
    assert.equal(greedy(Float32Array.of(-5, -4, -4.5)), 1);
    assert.equal(argmax(Float32Array.of(-Infinity, -Infinity, -1)), 2);
    assert.equal(makeSampler({ temperature: 0, seed: 1 })(Float32Array.of(0, 9, 9)), 1);
  });

  test('topLogprobs: the five largest log-softmax values, brute force', () => {
    const logits = Float32Array.of(0.5, 2, -1, 2, 7, 0, 3.5, 1, -3);
    const z = Math.log(Array.from(logits).reduce((a, l) => a + Math.exp(l), 0));
    const want = Array.from(logits, (l, id) => ({ id, logprob: l - z }))
      .sort((a, b) => b.logprob - a.logprob || a.id - b.id)
      .slice(0, 5);
    const got = topLogprobs(logits, 5);
    assert.deepEqual(
      got.map((e) => e.id),
      [4, 6, 1, 3, 7],
    );
    for (let i = 0; i < 5; i++) {
      assert.equal(got[i].id, want[i].id);
      assert.ok(Math.abs(got[i].logprob - want[i].logprob) < 1e-6);
    }
  });

  const logits = [1.2, 0.3, 2.5, -0.7, 2.0, 0.9, -2.0, 1.6];
  const cases: SamplingOptions[] = [
    { temperature: 1 },
    { temperature: 0.7, topK: 3 },
    { temperature: 1.5, topP: 0.8 },
    { temperature: 1, topK: 5, topP: 0.6 },
    { temperature: 2, topP: 0.3 },
  ];
  for (const o of cases) {
    test(`draws follow the brute-force distribution (T ${o.temperature}, top-k ${o.topK ?? 'off'}, top-p ${o.topP ?? 'off'})`, () => {
      const want = bruteForceDistribution(logits, o);
      const support = samplingSupport(Float32Array.from(logits), o)
        .ids.slice()
        .sort((a, b) => a - b);
      assert.deepEqual(
        support,
        want.map((p, i) => (p > 0 ? i : -1)).filter((i) => i >= 0),
      );
      const sampler = makeSampler({ ...o, seed: 42 });
      const N = 20000;
      const counts = new Array<number>(logits.length).fill(0);
      const row = Float32Array.from(logits);
      for (let i = 0; i < N; i++) counts[sampler(row)]++;
      for (let i = 0; i < logits.length; i++) {
        const f = counts[i] / N;
        if (want[i] === 0) assert.equal(counts[i], 0, `token ${i} is outside the support`);
        else
          assert.ok(
            Math.abs(f - want[i]) <= 4 * Math.sqrt((want[i] * (1 - want[i])) / N) + 1e-3,
            `token ${i}: frequency ${f} vs ${want[i]}`,
          );
      }
    });
  }

  test('top-p on a large vocabulary keeps exactly the nucleus (the candidate prefilter loses nothing)', () => {
    const vocab = 5000;
    const row = new Float32Array(vocab);
    for (let i = 0; i < vocab; i++) row[i] = Math.sin(i * 12.9898) * 4;
    for (const topP of [0.05, 0.5, 0.9, 0.99]) {
      const want = bruteForceDistribution(Array.from(row), { temperature: 0.8, topP });
      const got = samplingSupport(row, { temperature: 0.8, topP })
        .ids.slice()
        .sort((a, b) => a - b);
      assert.deepEqual(
        got,
        want.map((p, i) => (p > 0 ? i : -1)).filter((i) => i >= 0),
        `top-p ${topP}`,
      );
    }
  });

  test('bad sampling options name the option', () => {
    assert.throws(() => makeSampler({ temperature: -1 }), /--temperature/);
    assert.throws(() => makeSampler({ temperature: 1, topP: 2 }), /--top-p/);
    assert.throws(() => makeSampler({ temperature: 1, topP: 0 }), /--top-p/);
    assert.throws(() => makeSampler({ temperature: 1, topK: -3 }), /--top-k/);
  });
});

describe('decode', () => {
  test('greedy decoding picks the argmax of the float64 reference at every step', () => {
    const cfg = tinyConfig('llama');
    const w = randomWeights(cfg, 3, 0.15);
    const model = new LlamaModel(cfg, w, jsKernels);
    const prompt = [5, 77, 120, 9, 33, 250];
    // an f32 cache: the reference's own arithmetic (the f16 cache is checked in pipeline.test.ts)
    const r = generateFromTokens(model, prompt, { maxNewTokens: 6, stopTokens: [], kvDtype: 'f32' });
    assert.equal(r.tokens.length, 6);
    assert.equal(r.finish, 'length');
    const seq = [...prompt];
    for (let i = 0; i < 6; i++) {
      const ref = referenceForward(cfg, w, { tokens: seq, lastOnly: true }).logits[0];
      let best = 0;
      for (let j = 1; j < ref.length; j++) if (ref[j] > ref[best]) best = j;
      assert.equal(r.tokens[i], best, `step ${i}`);
      assert.equal(r.steps[i].token, best);
      assert.equal(r.steps[i].top[0].id, best);
      const z = Math.log(ref.reduce((a, l) => a + Math.exp(l - ref[best]), 0)) + ref[best];
      assert.ok(Math.abs(r.steps[i].top[0].logprob - (ref[best] - z)) < 1e-4);
      seq.push(best);
    }
    assert.equal(r.cache.nextPosition, prompt.length + 5);
  });

  test('a stop token ends decoding and is returned', () => {
    const model = tinyModel();
    const prompt = [1, 2, 3, 4];
    const free = generateFromTokens(model, prompt, { maxNewTokens: 5, stopTokens: [] });
    const stopped = generateFromTokens(model, prompt, { maxNewTokens: 5, stopTokens: [free.tokens[2]] });
    const firstStop = free.tokens.indexOf(free.tokens[2]);
    assert.deepEqual(stopped.tokens, free.tokens.slice(0, firstStop + 1));
    assert.equal(stopped.finish, 'stop');
  });

  test('stop tokens default to the config eos ids', () => {
    const model = tinyModel();
    const first = generateFromTokens(model, [8, 9], { maxNewTokens: 1, stopTokens: [] }).tokens[0];
    model.config.eosTokenIds.splice(0, model.config.eosTokenIds.length, first);
    const r = generateFromTokens(model, [8, 9], { maxNewTokens: 5 });
    assert.deepEqual(r.tokens, [first]);
    assert.equal(r.finish, 'stop');
  });

  test('sampled generation is deterministic for a seed, and the seed matters', () => {
    const model = tinyModel();
    const run = (seed: number) =>
      generateFromTokens(model, [10, 20, 30], { maxNewTokens: 12, stopTokens: [], sampler: makeSampler({ temperature: 5, seed }) }).tokens;
    assert.deepEqual(run(7), run(7));
    assert.notDeepEqual(run(7), run(8));
  });

  test('prefill and decode are separately callable; decoding stops at max_position_embeddings', () => {
    const cfg = tinyConfig('llama', { max_position_embeddings: 8 });
    const model = new LlamaModel(cfg, randomWeights(cfg, 3, 0.15), jsKernels);
    const p = prefill(model, [1, 2, 3, 4, 5]);
    assert.equal(p.nextPosition, 5);
    const d = decode(model, p.cache, { firstLogits: p.lastLogits, nextPosition: p.nextPosition, maxNewTokens: 10, stopTokens: [] });
    assert.equal(d.tokens.length, 4); // positions 5, 6, 7 fed; the fourth token has no position left
    assert.equal(d.finish, 'length');
    assert.throws(() => prefill(model, []), /empty/);
  });
});

interface GenerateJson {
  promptTokens: number[];
  tokens: number[];
  text: string;
  steps: { token: number; top: { id: number; logprob: number }[] }[];
  timings: Record<string, number>;
}

describe('kvevict generate', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvevict-generate-'));
    writeRandomModelDir(dir, tinyRawConfig('llama'), { seed: 5, scale: 0.15 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('--prompt --json: one JSON object; greedy steps agree with the in-process engine', () => {
    const r = cli(['generate', '--model', dir, '--prompt', 'Hello there', '--max-new-tokens', '6', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const out = JSON.parse(lines[0]) as GenerateJson;
    assert.deepEqual(Object.keys(out).sort(), ['memory', 'promptTokens', 'steps', 'text', 'timings', 'tokens']);
    assert.deepEqual(Object.keys(out.timings).sort(), ['decodeMs', 'decodeTokPerS', 'loadMs', 'prefillMs', 'prefillTokPerS']);
    const loaded = loadModelDir(dir);
    assert.deepEqual(out.promptTokens, loaded.tokenizer.encode('Hello there'));
    assert.ok(out.tokens.length >= 1 && out.tokens.length <= 6);
    assert.equal(out.steps.length, out.tokens.length);
    for (let i = 0; i < out.tokens.length; i++) {
      assert.equal(out.steps[i].token, out.tokens[i]);
      assert.equal(out.steps[i].top.length, 5);
      assert.equal(out.steps[i].top[0].id, out.tokens[i]);
      for (let j = 1; j < 5; j++) assert.ok(out.steps[i].top[j].logprob <= out.steps[i].top[j - 1].logprob);
      assert.ok(out.steps[i].top[0].logprob <= 0);
    }
    const model = new LlamaModel(loaded.config, loaded.weights, jsKernels);
    const want = generateFromTokens(model, out.promptTokens, { maxNewTokens: 6, stopTokens: loaded.tokenizer.eosTokenIds });
    assert.deepEqual(out.tokens, want.tokens);
    for (let i = 0; i < want.steps.length; i++) {
      for (let j = 0; j < 5; j++) {
        assert.equal(out.steps[i].top[j].id, want.steps[i].top[j].id);
        assert.ok(Math.abs(out.steps[i].top[j].logprob - want.steps[i].top[j].logprob) < 1e-5);
      }
    }
    const shown = (want.finish === 'stop' ? want.tokens.slice(0, -1) : want.tokens).filter((id) => id < loaded.tokenizer.vocabSize);
    assert.equal(out.text, loaded.tokenizer.decode(shown, { skipSpecialTokens: true }));
  });

  test('--chat goes through the chat template; sampled runs repeat for a seed', () => {
    const args = [
      'generate',
      '--model',
      dir,
      '--chat',
      'Hi',
      '--max-new-tokens',
      '5',
      '--temperature',
      '1.5',
      '--top-k',
      '50',
      '--seed',
      '3',
      '--json',
    ];
    const a = cli(args);
    assert.equal(a.status, 0, a.stderr);
    const out = JSON.parse(a.stdout) as GenerateJson;
    const loaded = loadModelDir(dir);
    assert.deepEqual(out.promptTokens, loaded.tokenizer.encodeChat([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }));
    assert.deepEqual((JSON.parse(cli(args).stdout) as GenerateJson).tokens, out.tokens);
  });

  test('--weights f16: greedy steps agree with the in-process engine on f16 weights', () => {
    const r = cli(['generate', '--model', dir, '--prompt', 'Hello there', '--max-new-tokens', '6', '--weights', 'f16', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as GenerateJson;
    const loaded = loadModelDir(dir);
    const model = new LlamaModel(loaded.config, loaded.weights, jsKernels, { weights: 'f16' });
    const want = generateFromTokens(model, out.promptTokens, { maxNewTokens: 6, stopTokens: loaded.tokenizer.eosTokenIds });
    assert.deepEqual(out.tokens, want.tokens);
    for (let i = 0; i < want.steps.length; i++)
      assert.ok(Math.abs(out.steps[i].top[0].logprob - want.steps[i].top[0].logprob) < 1e-5, `step ${i}`);
    // and not the float32 model's log-probabilities
    const f32 = generateFromTokens(new LlamaModel(loaded.config, loaded.weights, jsKernels), out.promptTokens, {
      maxNewTokens: 1,
      stopTokens: [],
    });
    assert.ok(Math.abs(out.steps[0].top[0].logprob - f32.steps[0].top[0].logprob) > 1e-6, 'f16 rounding shows in the log-probabilities');
  });

  test('plain output prints the text, timings on stderr', () => {
    const r = cli(['generate', '--model', dir, '--prompt', 'abc', '--max-new-tokens', '3']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /prefill .* tok\/s/);
  });

  test('bad options: one line naming the option, exit code 2', () => {
    for (const [args, name] of [
      [['--prompt', 'x', '--temperature', '-1'], '--temperature'],
      [['--prompt', 'x', '--top-p', '2'], '--top-p'],
      [['--prompt', 'x', '--weights', 'q4'], '--weights'],
      [['--prompt', 'x', '--chat', 'y'], '--prompt'],
      [[], '--chat'],
    ] as const) {
      const r = cli(['generate', '--model', dir, ...args]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.ok(r.stderr.includes(name), r.stderr);
      assert.equal(r.stdout, '');
    }
  });
});

test('an oversized --lookahead names the option, not a position (exit 2)', () => {
  const r = cli([
    'generate',
    '--chat',
    'The pass key is 123.',
    '--question',
    'What is it?',
    '--press',
    'laq:window=8:lookahead=5000',
    '--budget',
    '40',
  ]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /lookahead 5000: the prompt \(\d+ tokens\) and the lookahead pass max_position_embeddings 4096/);
});
