/**
 * Saved compressed contexts (.kvc): `kvevict compress` then `generate --context` answers exactly as the
 * in-process query-agnostic run does; the library round trip keeps every entry; files for another model,
 * truncated files and files whose parts disagree are refused in one line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { KvevictError } from '../src/errors.js';
import { loadCompressedContext, saveCompressedContext } from '../src/generate/context-file.js';
import { prefillAndCompress } from '../src/generate/pipeline.js';
import { KV_DTYPES } from '../src/cache/kv-cache.js';
import { jsKernels } from '../src/kernels/js.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadModelDir } from '../src/model/load.js';
import { writeSafetensors, readSafetensorsHeader, readTensorF32, readTensorHalfBits, readTensorI32 } from '../src/model/safetensors.js';
import { makePress } from '../src/press/index.js';
import { cli } from './helpers/cli.js';
import { promptTokens } from './helpers/press-reference.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';

const dir = mkdtempSync(join(tmpdir(), 'kvevict-kvc-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const modelDir = join(dir, 'model');
writeRandomModelDir(modelDir, tinyRawConfig('llama', { vocab_size: 259 }), { seed: 13, scale: 0.15 });
const otherDir = join(dir, 'other');
writeRandomModelDir(otherDir, tinyRawConfig('llama', { vocab_size: 259 }), { seed: 14, scale: 0.15 });

const CONTEXT = 'The blue box holds seven keys. The red box holds two coins. The green box holds a single map of the old harbour. '.repeat(
  3,
);
const QUESTION = 'What does the red box hold?';
const contextFile = join(dir, 'context.txt');
writeFileSync(contextFile, CONTEXT);

function json(r: { status: number; stdout: string; stderr: string }): Record<string, unknown> {
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('kvevict compress and generate --context', () => {
  for (const [chat, kvDtype] of [
    [false, 'f16'],
    [true, 'f32'],
  ] as const) {
    test(`the saved context answers exactly as the in-process query-agnostic run (${chat ? '--chat' : 'plain'}, ${kvDtype} cache)`, () => {
      const out = join(dir, `c-${chat}.kvc`);
      // f16 is the default: said only for f32
      const dtype = kvDtype === 'f32' ? ['--kv-dtype', 'f32'] : [];
      const made = json(
        cli([
          'compress',
          '--model',
          modelDir,
          '--context-file',
          contextFile,
          ...(chat ? ['--chat'] : []),
          '--press',
          'snapkv:window=4',
          '--budget',
          '24',
          ...dtype,
          '--out',
          out,
          '--json',
        ]),
      );
      assert.equal(made.fileBytes, statSync(out).size);
      assert.equal(made.kvDtype, kvDtype);
      assert.ok((made.cacheBytes as number) < (made.fullCacheBytes as number));
      const reused = json(
        cli(['generate', '--model', modelDir, '--context', out, '--question', QUESTION, '--max-new-tokens', '6', '--json']),
      );
      const fresh = json(
        cli([
          'generate',
          '--model',
          modelDir,
          chat ? '--chat' : '--prompt',
          CONTEXT,
          '--question',
          QUESTION,
          '--mode',
          'query-agnostic',
          '--press',
          'snapkv:window=4',
          '--budget',
          '24',
          ...dtype,
          '--max-new-tokens',
          '6',
          '--json',
        ]),
      );
      assert.equal((reused.memory as { kvDtype: string }).kvDtype, kvDtype, 'the file decides the cache');
      assert.equal((fresh.memory as { kvDtype: string }).kvDtype, kvDtype);
      assert.deepEqual(reused.promptTokens, fresh.promptTokens);
      assert.deepEqual(reused.questionTokens, fresh.questionTokens);
      assert.deepEqual(reused.tokens, fresh.tokens);
      assert.equal(reused.mode, 'query-agnostic');
      assert.deepEqual(reused.context, { file: out, reused: true });
      assert.deepEqual(reused.eviction, { ...(fresh.eviction as object), selectMs: 0 });
    });
  }

  test('bad use: one line naming the option or file, exit code 2', () => {
    const out = join(dir, 'c-false.kvc');
    for (const [args, pattern] of [
      [
        [
          'compress',
          '--model',
          modelDir,
          '--context-file',
          join(dir, 'none.txt'),
          '--press',
          'snapkv',
          '--budget',
          '8',
          '--out',
          join(dir, 'x.kvc'),
        ],
        /none\.txt: file not found/,
      ],
      [
        ['compress', '--model', modelDir, '--context-file', contextFile, '--press', 'snapkv', '--budget', '8', '--out', join(dir, 'x.bin')],
        /must end in \.kvc/,
      ],
      [
        ['compress', '--model', modelDir, '--context-file', contextFile, '--budget', '8', '--out', join(dir, 'x.kvc')],
        /--press is required/,
      ],
      [['generate', '--model', modelDir, '--context', out], /--context needs --question/],
      [
        ['generate', '--model', modelDir, '--context', out, '--question', 'q', '--press', 'snapkv', '--budget', '8'],
        /--press does not go with --context/,
      ],
      [
        ['generate', '--model', modelDir, '--context', out, '--prompt', 'x', '--question', 'q'],
        /exactly one of --prompt, --chat or --context/,
      ],
      [
        ['generate', '--model', otherDir, '--context', out, '--question', 'q'],
        /c-false\.kvc: the context was compressed for another model/,
      ],
      [
        ['generate', '--model', modelDir, '--context', out, '--question', 'q', '--kv-dtype', 'f32'],
        /--kv-dtype f32, but .*c-false\.kvc holds an f16 cache/,
      ],
      [
        [
          'compress',
          '--model',
          modelDir,
          '--context-file',
          contextFile,
          '--press',
          'snapkv',
          '--budget',
          '40',
          '--kv-dtype',
          'f8',
          '--out',
          join(dir, 'x.kvc'),
        ],
        /compress: --kv-dtype must be f32 or f16, got "f8"/,
      ],
      [['generate', '--model', modelDir, '--prompt', 'x', '--kv-dtype', 'bf16'], /generate: --kv-dtype must be f32 or f16, got "bf16"/],
    ] as [string[], RegExp][]) {
      const r = cli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
    }
  });
});

describe('compressed-context files', () => {
  const loaded = loadModelDir(modelDir);
  const model = new LlamaModel(loaded.config, loaded.weights, jsKernels);
  const tokens = promptTokens(60, 3);

  for (const kvDtype of KV_DTYPES)
    test(`round trip: every kept entry, position, key and value, the logits and the origin (${kvDtype} cache)`, async () => {
      const ctx = await prefillAndCompress(model, tokens, makePress('pyramidkv', { budget: 20, window: 4 }), { kvDtype });
      const file = join(dir, `rt-${kvDtype}.kvc`);
      saveCompressedContext(file, model, ctx, { tokens, press: 'pyramidkv', pressOptions: { window: 4 }, budget: 20, chat: false });
      // the file holds the cache's own numbers: halves of an f16 cache as F16 tensors
      const header = readSafetensorsHeader(file);
      assert.equal(header.metadata.kv_dtype, kvDtype);
      assert.equal(header.tensors.get('cache.0.0.keys')!.dtype, kvDtype === 'f16' ? 'F16' : 'F32');
      const back = loadCompressedContext(file, model);
      assert.equal(back.context.cache.dtype, kvDtype);
      assert.deepEqual(Array.from(back.origin.tokens), Array.from(tokens));
      assert.deepEqual(back.origin.pressOptions, { window: 4 });
      assert.equal(back.origin.budget, 20);
      assert.equal(back.context.nextPosition, ctx.nextPosition);
      assert.deepEqual(back.context.lastLogits, ctx.lastLogits);
      assert.equal(back.context.cacheBytes, ctx.cacheBytes);
      ctx.cache.layers.forEach((layer, l) =>
        layer.forEach((h, k) => {
          const b = back.context.cache.head(l, k);
          assert.equal(b.length, h.length, 'pyramid budgets differ by layer and survive');
          assert.deepEqual(b.positions.slice(0, b.length), h.positions.slice(0, h.length));
          assert.deepEqual(b.keyData.subarray(0, b.length * 8), h.keyData.subarray(0, h.length * 8));
          assert.deepEqual(b.valueData.subarray(0, b.length * 8), h.valueData.subarray(0, h.length * 8));
        }),
      );
    });

  test('truncated, reordered or mislabelled files are refused naming the file and the part', async () => {
    const ctx = await prefillAndCompress(model, tokens, makePress('snapkv', { budget: 16, window: 4 }));
    const file = join(dir, 'good.kvc');
    saveCompressedContext(file, model, ctx, { tokens, press: 'snapkv', pressOptions: {}, budget: 16, chat: false });
    const bytes = readFileSync(file);
    const cut = join(dir, 'cut.kvc');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    assert.throws(
      () => loadCompressedContext(cut, model),
      (e: Error) => e instanceof KvevictError && /cut\.kvc: truncated/.test(e.message),
    );
    // one byte of one value changed: the digest refuses it
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 5] ^= 0x40;
    const bad = join(dir, 'bad.kvc');
    writeFileSync(bad, flipped);
    assert.throws(() => loadCompressedContext(bad, model), /bad\.kvc: the compressed context does not match its sha256/);
    // another format, with the rest of the file as it was
    const h = readSafetensorsHeader(file);
    const tensors = [...h.tensors.values()].map((t) => ({
      name: t.name,
      shape: t.shape,
      data: t.dtype === 'I32' ? readTensorI32(t, file) : t.dtype === 'F16' ? readTensorHalfBits(t, file) : readTensorF32(t, file),
    }));
    writeSafetensors(bad, tensors, { ...h.metadata, format: 'kvevict-judgeq-1' });
    assert.throws(() => loadCompressedContext(bad, model), /bad\.kvc: not a compressed context/);
    // a signed file whose positions do not rise (written from a damaged cache)
    const head = ctx.cache.head(1, 0);
    [head.positions[2], head.positions[3]] = [head.positions[3], head.positions[2]];
    saveCompressedContext(bad, model, ctx, { tokens, press: 'snapkv', pressOptions: {}, budget: 16, chat: false });
    assert.throws(() => loadCompressedContext(bad, model), /bad\.kvc: cache\.1\.0\.positions must rise/);
  });
});
