/** Press options: bad input gives one line naming it; the inspect command prints what the press keeps. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseArgs } from '../src/cli/args.js';
import { KvevictError } from '../src/errors.js';
import { prefillAndCompress, runQueryAware } from '../src/generate/pipeline.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadModelDir } from '../src/model/load.js';
import { makePress, optionsOf, parsePress, pressHelp, PRESS_NAMES, withModelFiles, type PressOptions } from '../src/press/index.js';
import { DEFAULT_SOFT_FILE } from '../src/press/methods/judgeq.js';
import { defaultModelDir, repoRoot } from '../src/paths.js';
import { PRESS_OPTION_SPECS, pressFromCli } from '../src/cli/press-options.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { cli } from './helpers/cli.js';

function rejects(name: string, o: PressOptions, pattern: RegExp): void {
  assert.throws(
    () => makePress(name, o),
    (e: unknown) => {
      assert.ok(e instanceof KvevictError, `${name} ${JSON.stringify(o)}: a KvevictError`);
      assert.ok(!e.message.includes('\n'), 'one line');
      assert.match(e.message, pattern);
      return true;
    },
  );
}

describe('press options', () => {
  it('builds every method with its defaults', () => {
    const ours = [
      'full',
      'random',
      'streaming',
      'knorm',
      'keydiff',
      'h2o',
      'tova',
      'snapkv',
      'pyramidkv',
      'adakv',
      'expected-attention',
      'laq',
      'laq++',
    ];
    for (const name of ours) assert.ok(PRESS_NAMES.includes(name), name);
    for (const name of ours) {
      const p = makePress(name, name === 'full' ? {} : { budget: 64 });
      assert.ok(p.name.length > 0);
    }
  });

  it('rejects bad input with one line naming it', () => {
    rejects('snapkvv', { budget: 8 }, /unknown press "snapkvv"/);
    rejects('snapkv', { budget: 0 }, /press snapkv: budget must be an integer >= 1, got 0/);
    rejects('snapkv', { budget: 2.5 }, /budget must be/);
    rejects('snapkv', { ratio: 1 }, /ratio must be in \[0, 1\), got 1/);
    rejects('snapkv', { ratio: -0.1 }, /ratio/);
    rejects('snapkv', { budget: 16, window: 32 }, /press snapkv: window 32 is larger than the budget 16/);
    rejects('snapkv', { budget: 16 }, /window 32 is larger than the budget 16/);
    rejects('laq++', { budget: 64, w2: 80 }, /w2 80 is larger than the budget 64/);
    rejects('streaming', { budget: 3 }, /sinks 4 is larger than the budget 3/);
    rejects('laq', { budget: 3, stage1: 'streaming' }, /sinks 4 is larger than the budget 3/);
    rejects('judgeq', { budget: 16, noWindow: false }, /window 32 is larger/);
    rejects('knorm', { budget: 16, window: 4 }, /press knorm does not take option window \(its options: none\)/);
    rejects('streaming', { budget: 16, kernel: 3 }, /does not take option kernel \(its options: sinks\)/);
    rejects('snapkv', { budget: 64, w2: 4 }, /does not take option w2/);
    rejects('laq', { budget: 64, w2: 4 }, /press laq does not take option w2/);
    rejects('h2o', { budget: 64, kernel: 3 }, /does not take option kernel/);
    rejects('adakv', { budget: 64, scorer: 'knorm', window: 8 }, /press adakv does not take option window/);
    rejects('adakv', { budget: 64, scorer: 'pyramidkv' }, /press adakv: scorer must be one of random, streaming/);
    rejects('full', { budget: 64 }, /press full takes no budget/);
    rejects('snapkv', {}, /needs a budget \(--budget B\) or a ratio \(--ratio R\)/);
    rejects('snapkv', { budget: 8, ratio: 0.5 }, /not both/);
    rejects('snapkv', { budget: 64, pool: 'min' }, /press snapkv: pool must be one of max, avg, got "min"/);
    rejects('snapkv', { budget: 64, gqa: 'sum' }, /gqa must be one of mean, max/);
    rejects('laq', { budget: 64, stage1: 'knorm' }, /stage1 must be one of snapkv, streaming, h2o/);
    rejects('laq', { budget: 64, lookahead: 0 }, /lookahead must be an integer >= 1, got 0/);
    rejects('adakv', { budget: 64, alpha: 2 }, /alpha must be in \[0, 1\], got 2/);
    rejects('judgeq', { budget: 64, soft: '' }, /soft must be a file name/);
    rejects('laq', { budget: 64, referenceMask: 'yes' }, /reference-mask must be true or false, got "yes"/);
    rejects('snapkv', { budget: 64, window: 4, 'window ': 3 }, /does not take option window /);
    rejects('laq', { budget: 64, noWindow: true, 'no-window': true }, /no-window given twice|does not take option no-window/);
  });

  it('takes the library and the press-string names of an option alike', () => {
    const a = makePress('laq', { budget: 64, referenceMask: true });
    const b = makePress('laq', { budget: 64, 'reference-mask': true });
    assert.equal(a.name, b.name);
    rejects('laq', { budget: 64, referenceMask: true, 'reference-mask': false }, /reference-mask given twice/);
  });

  it('adakv takes its scorer options', () => {
    assert.deepEqual([...optionsOf('adakv', 'knorm')], ['alpha', 'scorer']);
    assert.ok(optionsOf('adakv', 'laq++').includes('w2'));
    assert.ok(optionsOf('adakv').includes('window'), 'the default scorer, snapkv, takes a window');
    assert.equal(makePress('adakv', { budget: 64, scorer: 'laq++', w2: 4 }).name, 'adakv(laq++)');
    assert.equal(makePress('adakv', { budget: 64 }).name, 'adakv(snapkv)');
  });

  it('parses NAME[:key=value...] and checks it against the method', () => {
    assert.deepEqual(parsePress('snapkv'), { name: 'snapkv', options: {} });
    assert.deepEqual(parsePress('SnapKV:window=64:pool=avg'), { name: 'snapkv', options: { window: 64, pool: 'avg' } });
    assert.deepEqual(parsePress('adakv:scorer=laq++:w2=4:reference-mask=true'), {
      name: 'adakv',
      options: { scorer: 'laq++', w2: 4, 'reference-mask': true },
    });
    assert.deepEqual(parsePress('judgeq:soft=123'), { name: 'judgeq', options: { soft: '123' } }, 'a file name stays a string');
    const bad: [string, RegExp][] = [
      ['nope', /--press: unknown press "nope"/],
      [':window=3', /bad method/],
      ['snapkv:window', /bad option "window" in "snapkv:window" \(expected key=value\)/],
      ['snapkv:window=0', /--press: press snapkv: window must be an integer >= 1, got "0"/],
      ['snapkv:window=0x10', /window must be an integer/],
      ['snapkv:window=3:window=4', /option window given twice/],
      ['snapkv:budget=64', /the budget is given apart from the press \(--budget\)/],
      ['knorm:window=4', /press knorm does not take option window/],
      ['adakv:scorer=nope', /scorer must be one of/],
      ['judgeq:no-window=maybe', /no-window must be true or false, got "maybe"/],
    ];
    for (const [text, pattern] of bad) {
      assert.throws(
        () => parsePress(text),
        (e: unknown) => e instanceof KvevictError && !e.message.includes('\n') && pattern.test(e.message),
        text,
      );
    }
  });

  it("points a trained file left at its default at the model folder's own file", () => {
    const folder = mkdtempSync(join(tmpdir(), 'kvevict-model-files-'));
    try {
      const own = join(folder, 'judgeq.safetensors');
      // without a file of its own, the model takes the embedded default
      assert.deepEqual(withModelFiles(parsePress('judgeq'), folder), parsePress('judgeq'));
      writeFileSync(own, 'x');
      assert.equal(withModelFiles(parsePress('judgeq:window=8'), folder).options.soft, own);
      assert.equal(withModelFiles(parsePress('judgeq+laq'), folder).options.soft, own);
      assert.equal(withModelFiles(parsePress('adakv:scorer=judgeq'), folder).options.soft, own);
      // a GGUF file's folder holds its trained files
      assert.equal(withModelFiles(parsePress('judgeq'), join(folder, 'model.gguf')).options.soft, own);
      // a file the user names stays; methods without trained files and the embedded model are unchanged
      assert.equal(withModelFiles(parsePress('judgeq:soft=mine.safetensors'), folder).options.soft, 'mine.safetensors');
      assert.deepEqual(withModelFiles(parsePress('snapkv'), folder), parsePress('snapkv'));
      assert.deepEqual(withModelFiles(parsePress('judgeq'), defaultModelDir), parsePress('judgeq'));
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('lists every method and its options in the help', () => {
    const help = pressHelp();
    for (const name of PRESS_NAMES) assert.match(help, new RegExp(`^  ${name.replace(/[+]/g, '\\+')} `, 'm'), name);
    assert.match(help, /window=32 kernel=7 pool=max\|avg gqa=mean\|max/);
    assert.match(help, /alpha=0.2 scorer=snapkv/);
  });

  it('reads --press NAME[:key=value...] with --budget or --ratio', () => {
    const parse = (argv: string[]) => parseArgs(argv, PRESS_OPTION_SPECS, 'test').options;
    assert.equal(pressFromCli(parse([])), null);
    assert.equal(pressFromCli(parse(['--press', 'snapkv:window=16', '--budget', '64']))?.name, 'snapkv');
    assert.equal(pressFromCli(parse(['--press', 'random:seed=3', '--ratio', '0.5']))?.name, 'random');
    assert.throws(() => pressFromCli(parse(['--press', 'snapkv:seed=3', '--budget', '64'])), /does not take option seed/);
    assert.throws(() => pressFromCli(parse(['--budget', '64'])), /--budget needs --press/);
    assert.equal(pressFromCli(parse(['--press', 'laq++:reference-mask=true:w2=4', '--budget', '64']))?.name, 'laq++');
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
    const r = cli(['inspect', '--model', dir, '--prompt', text, '--press', 'adakv:window=4:kernel=3', '--budget', '24', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { promptTokens: number[]; layers: { heads: { kept: number[] }[] }[] };
    const loaded = loadModelDir(dir);
    assert.deepEqual(out.promptTokens, loaded.tokenizer.encode(text));
    const ctx = await prefillAndCompress(
      new LlamaModel(loaded.config, loaded.weights),
      out.promptTokens,
      makePress('adakv', { budget: 24, window: 4, kernel: 3 }),
    );
    assert.equal(out.layers.length, 3);
    out.layers.forEach((layer, l) => {
      assert.equal(layer.heads.length, 2);
      layer.heads.forEach((h, kv) => assert.deepEqual(h.kept, Array.from(ctx.plan[l][kv])));
    });
  });

  it('prints a readable summary with the kept tokens of one head marked', () => {
    const r = cli([
      'inspect',
      '--model',
      dir,
      '--prompt',
      text,
      '--press',
      'streaming:sinks=2',
      '--budget',
      '10',
      '--layer',
      '1',
      '--head',
      '1',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /layer 1, KV head 1: 10 of \d+ tokens kept/);
    // streaming keeps the first two tokens (bytes here) and the last eight: two marked spans
    const marked = r.stdout.trim().split('\n').pop()!;
    assert.equal(marked, `[Th]${text.slice(2, -8)}[${text.slice(-8)}]`);
  });

  it('bad input: one line naming it, non-zero exit', () => {
    const cases: [string[], RegExp][] = [
      [['--press', 'nope', '--budget', '8'], /unknown press "nope"/],
      [['--press', 'snapkv', '--budget', '0'], /budget must be/],
      [['--press', 'snapkv', '--ratio', '1.5'], /ratio must be in \[0, 1\)/],
      [['--press', 'snapkv:window=16', '--budget', '8'], /window 16 is larger than the budget 8/],
      [['--press', 'knorm:kernel=3', '--budget', '8'], /does not take option kernel/],
      [['--press', 'snapkv', '--budget', '8', '--window', '4'], /unknown option --window/],
      [['--press', 'snapkv:window=4', '--budget', '8', '--layer', '7'], /--layer must be in \[0, 2\]/],
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
    const r = cli([
      'generate',
      '--model',
      dir,
      '--prompt',
      text,
      '--max-new-tokens',
      '5',
      '--press',
      'laq++:window=8:w2=4:lookahead=3',
      '--budget',
      '20',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      promptTokens: number[];
      tokens: number[];
      eviction: { press: string; cacheBytes: number; fullCacheBytes: number };
    };
    const loaded = loadModelDir(dir);
    const cfg = loaded.config;
    assert.equal(out.eviction.press, 'laq++');
    // the default cache: f16 keys and values, int32 positions
    const entry = 2 * cfg.headDim * 2 + 4;
    assert.equal(out.eviction.cacheBytes, cfg.numLayers * cfg.numKvHeads * 20 * entry);
    assert.equal(out.eviction.fullCacheBytes, cfg.numLayers * cfg.numKvHeads * out.promptTokens.length * entry);
    const want = await runQueryAware(
      new LlamaModel(cfg, loaded.weights),
      out.promptTokens,
      makePress('laq++', { budget: 20, window: 8, w2: 4, lookahead: 3 }),
      {
        maxNewTokens: 5,
        stopTokens: loaded.tokenizer.eosTokenIds,
      },
    );
    assert.deepEqual(out.tokens, want.tokens);
  });

  it("judgeq reads the soft tokens of the model it runs on (kvevict-ref-v2's own)", () => {
    const v2 = join(repoRoot, 'models', 'kvevict-ref-v2');
    const args = ['generate', '--model', v2, '--prompt', text, '--max-new-tokens', '2', '--budget', '12', '--json', '--press'];
    const r = cli([...args, 'judgeq:window=4']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { eviction: { press: string } }).eviction.press, 'judgeq');
    // the embedded model's soft tokens, named, are refused on it: the default above was not them
    const embedded = cli([...args, `judgeq:window=4:soft=${DEFAULT_SOFT_FILE}`]);
    assert.equal(embedded.status, 2);
    assert.match(embedded.stderr, /judgeq\.safetensors/);
  });

  it('bad press options: one line, non-zero exit', () => {
    for (const [args, pattern] of [
      [['--press', 'knorm:window=4', '--budget', '8'], /press knorm does not take option window/],
      [['--budget', '8'], /--budget needs --press/],
      [['--press', 'snapkv', '--ratio', '1'], /ratio must be in \[0, 1\)/],
    ] as [string[], RegExp][]) {
      const r = cli(['generate', '--model', dir, '--prompt', text, ...args]);
      assert.notEqual(r.status, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
    }
  });
});
