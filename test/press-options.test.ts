/** Press options: bad input gives one line naming it; the inspect command prints what the press keeps. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseArgs } from '../src/cli/args.js';
import { KvevictError } from '../src/errors.js';
import { prefillAndCompress, runQueryAware } from '../src/generate/pipeline.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadModelDir } from '../src/model/load.js';
import { makePress, optionsOf, PRESS_NAMES, type PressOptions } from '../src/press/index.js';
import { PRESS_OPTION_SPECS, pressFromCli } from '../src/cli/press-options.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { cli } from './helpers/cli.js';

function rejects(name: string, o: PressOptions, pattern: RegExp): void {
  assert.throws(() => makePress(name, o), (e: unknown) => {
    assert.ok(e instanceof KvevictError, `${name} ${JSON.stringify(o)}: a KvevictError`);
    assert.ok(!e.message.includes('\n'), 'one line');
    assert.match(e.message, pattern);
    return true;
  });
}

describe('press options', () => {
  it('builds every method with its defaults', () => {
    const ours = ['full', 'random', 'streaming', 'knorm', 'keydiff', 'h2o', 'tova', 'snapkv', 'pyramidkv', 'adakv', 'expected-attention', 'laq', 'laq++'];
    for (const name of ours) assert.ok(PRESS_NAMES.includes(name), name);
    for (const name of ours) {
      const p = makePress(name, name === 'full' ? {} : { budget: 64 });
      assert.ok(p.name.length > 0);
    }
  });

  it('rejects bad input with one line naming it', () => {
    rejects('snapkvv', { budget: 8 }, /unknown press "snapkvv"/);
    rejects('snapkv', { budget: 0 }, /--budget must be an integer >= 1, got 0/);
    rejects('snapkv', { budget: 2.5 }, /--budget/);
    rejects('snapkv', { ratio: 1 }, /--ratio must be in \[0, 1\), got 1/);
    rejects('snapkv', { ratio: -0.1 }, /--ratio/);
    rejects('snapkv', { budget: 16, window: 32 }, /--window 32 is larger than --budget 16/);
    rejects('snapkv', { budget: 16 }, /--window 32 is larger than --budget 16/);
    rejects('laq++', { budget: 64, w2: 80 }, /--w2 80 is larger than --budget 64/);
    rejects('streaming', { budget: 3 }, /--sinks 4 is larger than --budget 3/);
    rejects('knorm', { budget: 16, window: 4 }, /press knorm does not take --window/);
    rejects('streaming', { budget: 16, kernel: 3 }, /does not take --kernel/);
    rejects('snapkv', { budget: 64, w2: 4 }, /does not take --w2/);
    rejects('laq', { budget: 64, w2: 4 }, /press laq does not take --w2/);
    rejects('h2o', { budget: 64, kernel: 3 }, /does not take --kernel/);
    rejects('adakv', { budget: 64, scorer: 'knorm', window: 8 }, /press adakv does not take --window/);
    rejects('adakv', { budget: 64, scorer: 'pyramidkv' }, /--scorer must be one of/);
    rejects('full', { budget: 64 }, /press full does not take --budget/);
    rejects('snapkv', {}, /needs --budget B or --ratio R/);
    rejects('snapkv', { budget: 8, ratio: 0.5 }, /not both/);
    rejects('snapkv', { budget: 64, pool: 'min' as 'max' }, /--pool must be max or avg/);
    rejects('snapkv', { budget: 64, gqa: 'sum' as 'max' }, /--gqa must be mean or max/);
    rejects('laq', { budget: 64, stage1: 'knorm' as 'h2o' }, /--stage1 must be/);
    rejects('laq', { budget: 64, lookahead: 0 }, /--lookahead/);
  });

  it('adakv takes its scorer options', () => {
    assert.deepEqual([...optionsOf('adakv', 'knorm')], ['scorer', 'alpha']);
    assert.ok(optionsOf('adakv', 'laq++').includes('w2'));
    assert.equal(makePress('adakv', { budget: 64, scorer: 'laq++', w2: 4 }).name, 'adakv(laq++)');
  });

  it('reads CLI options; a command-owned option reaches the press only when it takes it', () => {
    const parse = (argv: string[]) => parseArgs(argv, { ...PRESS_OPTION_SPECS, seed: { type: 'int', help: '', default: 0 } }, 'test').options;
    assert.equal(pressFromCli(parse(['--seed', '3']), ['seed']), null);
    assert.equal(pressFromCli(parse(['--press', 'snapkv', '--budget', '64', '--seed', '3']), ['seed'])?.name, 'snapkv');
    assert.equal(pressFromCli(parse(['--press', 'random', '--ratio', '0.5']), ['seed'])?.name, 'random');
    assert.throws(() => pressFromCli(parse(['--press', 'snapkv', '--budget', '64', '--seed', '3'])), /does not take --seed/);
    assert.throws(() => pressFromCli(parse(['--budget', '64'])), /--budget needs --press/);
    assert.equal(pressFromCli(parse(['--press', 'laq++', '--budget', '64', '--reference-mask', '--w2', '4']), ['seed'])?.name, 'laq++');
  });
});


describe('kvevict inspect', () => {
  let dir = '';
  const text = 'The quick brown fox jumps over the lazy dog. It was a sunny day in the park, and nobody minded.';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvevict-inspect-'));
    writeRandomModelDir(dir, tinyRawConfig('llama', { num_hidden_layers: 3 }), { seed: 5, scale: 0.15 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--json prints the prompt tokens and the sorted positions each KV head keeps, as the library does', async () => {
    const r = cli(['inspect', '--model', dir, '--prompt', text, '--press', 'adakv', '--budget', '24', '--window', '4', '--kernel', '3', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { promptTokens: number[]; layers: { heads: { kept: number[] }[] }[] };
    const loaded = loadModelDir(dir);
    assert.deepEqual(out.promptTokens, loaded.tokenizer.encode(text));
    const ctx = await prefillAndCompress(new LlamaModel(loaded.config, loaded.weights), out.promptTokens, makePress('adakv', { budget: 24, window: 4, kernel: 3 }));
    assert.equal(out.layers.length, 3);
    out.layers.forEach((layer, l) => {
      assert.equal(layer.heads.length, 2);
      layer.heads.forEach((h, kv) => assert.deepEqual(h.kept, Array.from(ctx.plan[l][kv])));
    });
  });

  it('prints a readable summary with the kept tokens of one head marked', () => {
    const r = cli(['inspect', '--model', dir, '--prompt', text, '--press', 'streaming', '--budget', '10', '--sinks', '2', '--layer', '1', '--head', '1']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /layer 1, KV head 1: 10 of \d+ tokens kept/);
    // streaming keeps the first two tokens (bytes here) and the last eight: two marked spans
    const marked = r.stdout.trim().split('\n').pop()!;
    assert.equal(marked, `[Th]${text.slice(2, -8)}[${text.slice(-8)}]`);
  });

  it('bad input: one line naming it, non-zero exit', () => {
    const cases: [string[], RegExp][] = [
      [['--press', 'nope', '--budget', '8'], /unknown press "nope"/],
      [['--press', 'snapkv', '--budget', '0'], /--budget must be/],
      [['--press', 'snapkv', '--ratio', '1.5'], /--ratio must be in \[0, 1\)/],
      [['--press', 'snapkv', '--budget', '8', '--window', '16'], /--window 16 is larger than --budget 8/],
      [['--press', 'knorm', '--budget', '8', '--kernel', '3'], /does not take --kernel/],
      [['--press', 'snapkv', '--budget', '8', '--window', '4', '--layer', '7'], /--layer must be in \[0, 2\]/],
      [['--budget', '8'], /--press is required/],
    ];
    for (const [args, pattern] of cases) {
      const r = cli(['inspect', '--model', dir, '--prompt', text, ...args]);
      assert.notEqual(r.status, 0, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
    }
  });
});

describe('kvevict generate --press', () => {
  let dir = '';
  const text = 'Once upon a time there was a small robot who liked to count the stars above the quiet town.';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvevict-generate-press-'));
    writeRandomModelDir(dir, tinyRawConfig('llama'), { seed: 9, scale: 0.15 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('generates on the compressed cache, as the library does', async () => {
    const r = cli(['generate', '--model', dir, '--prompt', text, '--max-new-tokens', '5', '--press', 'laq++', '--budget', '20', '--window', '8', '--w2', '4', '--lookahead', '3', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { promptTokens: number[]; tokens: number[]; eviction: { press: string; cacheBytes: number; fullCacheBytes: number } };
    const loaded = loadModelDir(dir);
    const cfg = loaded.config;
    assert.equal(out.eviction.press, 'laq++');
    assert.equal(out.eviction.cacheBytes, cfg.numLayers * cfg.numKvHeads * 20 * (2 * cfg.headDim * 4 + 4));
    assert.equal(out.eviction.fullCacheBytes, cfg.numLayers * cfg.numKvHeads * out.promptTokens.length * (2 * cfg.headDim * 4 + 4));
    const want = await runQueryAware(new LlamaModel(cfg, loaded.weights), out.promptTokens, makePress('laq++', { budget: 20, window: 8, w2: 4, lookahead: 3 }), {
      maxNewTokens: 5, stopTokens: loaded.tokenizer.eosTokenIds,
    });
    assert.deepEqual(out.tokens, want.tokens);
  });

  it('bad press options: one line, non-zero exit', () => {
    for (const [args, pattern] of [
      [['--press', 'knorm', '--budget', '8', '--window', '4'], /press knorm does not take --window/],
      [['--budget', '8'], /--budget needs --press/],
      [['--press', 'snapkv', '--ratio', '1'], /--ratio must be in \[0, 1\)/],
    ] as [string[], RegExp][]) {
      const r = cli(['generate', '--model', dir, '--prompt', text, ...args]);
      assert.notEqual(r.status, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
    }
  });
});
