/**
 * kvevict generate --question and --mode: the prompt is split as eval splits its cases (context, then a
 * blank line and the question), query-agnostic mode compresses the context alone and feeds the question
 * after it; checked against the chat template applied to the whole message and against the library.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateFromTokens } from '../src/generate/pipeline.js';
import { runQueryAgnostic, runQueryAware } from '../src/generate/pipeline.js';
import { jsKernels } from '../src/kernels/index.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadModelDir } from '../src/model/load.js';
import { makePress } from '../src/press/index.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { cli } from './helpers/cli.js';

interface ModeJson {
  memory: { peakCacheBytes: number; finalCacheBytes: number; fullCacheBytes: number; kvDtype: string };
  promptTokens: number[];
  tokens: number[];
  text: string;
  steps: { token: number; top: { id: number; logprob: number }[] }[];
  timings: Record<string, number>;
  eviction?: { press: string; selectMs: number; fullCacheBytes: number; cacheBytes: number };
  mode?: string;
  questionTokens?: number[];
}

const CONTEXT = 'The blue box holds seven keys. The red box holds two coins. The green box holds a single map of the old harbour.';
const QUESTION = 'What does the red box hold?';

describe('kvevict generate --question / --mode', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvevict-generate-mode-'));
    writeRandomModelDir(dir, tinyRawConfig('llama', { vocab_size: 259 }), { seed: 13, scale: 0.15 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** `generate` on CONTEXT (given as --prompt or --chat) and QUESTION in one mode. */
  const ask = (as: '--prompt' | '--chat', mode: string, maxNewTokens: number): string[] => [
    'generate',
    '--model',
    dir,
    as,
    CONTEXT,
    '--question',
    QUESTION,
    '--mode',
    mode,
    '--max-new-tokens',
    String(maxNewTokens),
  ];

  function parse(r: { status: number; stdout: string; stderr: string }): ModeJson {
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    return JSON.parse(lines[0]) as ModeJson;
  }

  test('--chat --question: one user turn "context, blank line, question"; query-aware with the full cache is plain generation', () => {
    const out = parse(cli(['generate', '--model', dir, '--chat', CONTEXT, '--question', QUESTION, '--max-new-tokens', '6', '--json']));
    const loaded = loadModelDir(dir);
    const tok = loaded.tokenizer;
    // the byte tokenizer splits nowhere differently, so the two parts join into the templated whole message
    assert.deepEqual(
      out.promptTokens,
      tok.encodeChat([{ role: 'user', content: `${CONTEXT}\n\n${QUESTION}` }], { addGenerationPrompt: true }),
    );
    assert.equal(out.mode, 'query-aware');
    const q = out.questionTokens!;
    assert.deepEqual(out.promptTokens.slice(out.promptTokens.length - q.length), q);
    assert.equal(tok.decode(q), `\n\n${QUESTION}<|im_end|>\n<|im_start|>assistant\n`);
    assert.deepEqual(Object.keys(out).sort(), ['memory', 'mode', 'promptTokens', 'questionTokens', 'steps', 'text', 'timings', 'tokens']);
    const model = new LlamaModel(loaded.config, loaded.weights, jsKernels);
    assert.deepEqual(out.tokens, generateFromTokens(model, out.promptTokens, { maxNewTokens: 6, stopTokens: tok.eosTokenIds }).tokens);
    assert.equal(out.steps.length, out.tokens.length);
    for (const s of out.steps) assert.equal(s.top.length, 5);
  });

  test('--mode query-agnostic --press: only the context is compressed; the question is fed after it, as the library does', async () => {
    const budget = 16;
    const out = parse(cli([...ask('--chat', 'query-agnostic', 5), '--press', 'snapkv:window=4', '--budget', String(budget), '--json']));
    const loaded = loadModelDir(dir);
    const cfg = loaded.config;
    const entry = 2 * cfg.headDim * 2 + 4; // the default cache: f16 keys and values, int32 positions
    assert.equal(out.mode, 'query-agnostic');
    const q = out.questionTokens!;
    const context = out.promptTokens.slice(0, out.promptTokens.length - q.length);
    assert.equal(out.eviction!.press, 'snapkv');
    // the cache before eviction holds the context alone (query-aware mode would hold the question too)
    assert.equal(out.eviction!.fullCacheBytes, cfg.numLayers * cfg.numKvHeads * context.length * entry);
    assert.equal(out.eviction!.cacheBytes, cfg.numLayers * cfg.numKvHeads * budget * entry);
    // the cache's own accounting: the peak is the context's full prefill; at the end, budget + question + the answer fed back
    const perToken = cfg.numLayers * cfg.numKvHeads * entry;
    assert.deepEqual(out.memory, {
      peakCacheBytes: context.length * perToken,
      finalCacheBytes: (budget + q.length + out.tokens.length - 1) * perToken,
      fullCacheBytes: out.promptTokens.length * perToken,
      kvDtype: 'f16',
    });
    const model = new LlamaModel(cfg, loaded.weights, jsKernels);
    const opts = { maxNewTokens: 5, stopTokens: loaded.tokenizer.eosTokenIds };
    const want = await runQueryAgnostic(model, context, [q], makePress('snapkv', { budget, window: 4 }), opts);
    assert.deepEqual(out.tokens, want.answers[0].tokens);

    // query-aware with the same press compresses context + question: a different cache
    const aware = parse(cli([...ask('--chat', 'query-aware', 5), '--press', 'snapkv:window=4', '--budget', String(budget), '--json']));
    assert.deepEqual(aware.promptTokens, out.promptTokens);
    assert.equal(aware.eviction!.fullCacheBytes, cfg.numLayers * cfg.numKvHeads * out.promptTokens.length * entry);
    const wantAware = await runQueryAware(model, aware.promptTokens, makePress('snapkv', { budget, window: 4 }), opts);
    assert.deepEqual(aware.tokens, wantAware.tokens);
  });

  test('--prompt --question without --press: the full cache, so query-agnostic equals plain generation', () => {
    const out = parse(cli([...ask('--prompt', 'query-agnostic', 6), '--json']));
    const loaded = loadModelDir(dir);
    const tok = loaded.tokenizer;
    assert.deepEqual(out.promptTokens, tok.encode(`${CONTEXT}\n\n${QUESTION}`));
    assert.deepEqual(out.questionTokens, tok.encode(`\n\n${QUESTION}`));
    assert.equal(out.eviction, undefined);
    const model = new LlamaModel(loaded.config, loaded.weights, jsKernels);
    assert.deepEqual(out.tokens, generateFromTokens(model, out.promptTokens, { maxNewTokens: 6, stopTokens: tok.eosTokenIds }).tokens);
  });

  test('without --question the JSON keeps its fields; plain output names the mode', () => {
    const out = parse(cli(['generate', '--model', dir, '--prompt', 'abc', '--mode', 'query-aware', '--max-new-tokens', '2', '--json']));
    assert.deepEqual(Object.keys(out).sort(), ['memory', 'promptTokens', 'steps', 'text', 'timings', 'tokens']);
    const r = cli(ask('--prompt', 'query-agnostic', 2));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /query-agnostic: context \d+, question \d+/);
  });

  test('bad combinations: one line naming the option, exit code 2', () => {
    for (const [args, pattern] of [
      [['--prompt', 'x', '--mode', 'query-agnostic'], /--mode query-agnostic needs --question/],
      [['--prompt', 'x', '--question', 'y', '--mode', 'sideways'], /--mode must be query-aware or query-agnostic, got "sideways"/],
      [['--prompt', 'x', '--question', ' '], /--question is empty/],
      [['--question', 'y'], /--prompt, --chat or --context/],
      [['--prompt', '', '--question', 'y', '--mode', 'query-agnostic'], /--prompt is empty/],
      [['--prompt', 'x'.repeat(2100), '--question', 'y'], /max_position_embeddings is 2048/],
    ] as [string[], RegExp][]) {
      const r = cli(['generate', '--model', dir, ...args]);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, '');
    }
  });
});
