import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir } from '../src/model/load.js';
import { parseConfig } from '../src/model/config.js';
import { floatWeights, LINEAR_NAMES } from '../src/model/weights.js';
import { writeGguf } from '../src/model/gguf.js';
import { cli } from './helpers/cli.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { sharedData } from '../src/paths.js';

const STORIES_GGUF = join(sharedData, 'models', 'stories260K', 'stories260K.gguf');

const root = mkdtempSync(join(tmpdir(), 'kvevict-tohf-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

const TEXTS = [
  'Once upon a time, there was a little girl named Lily.',
  'She had 3 cats and 12 dogs; in 2024 she counted 1,234,567 of them!',
  '  two leading spaces, a tab\there, and\nnew lines\n\nand trailing spaces  ',
  'Ünïcödé: naïve café, Straße, Ελληνικά, 日本語, emoji 🎉 and ∑√ ≤.',
  '<s>a special token inside</s> the text, then more text',
];

test('convert --to hf: stories260K as a Hugging Face folder encodes, computes and generates as the GGUF file does', () => {
  const out = join(root, 'stories-hf');
  const r = cli(['convert', '--model', STORIES_GGUF, '--to', 'hf', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(existsSync(join(out, f)), f);
  const g = loadModelDir(STORIES_GGUF);
  const h = loadModelDir(out);
  assert.deepEqual(h.config, { ...g.config }, 'config.json reads back as the GGUF metadata did');
  // the rebuilt tokenizer.json (BPE with byte fallback, merges from the scores) is Hugging Face's tokenizer, not the SentencePiece one
  assert.equal(h.tokenizer.spmVocab, null);
  for (const t of TEXTS) {
    assert.deepEqual(h.tokenizer.encode(t), g.tokenizer.encode(t), `ids of ${JSON.stringify(t)}`);
    assert.deepEqual(
      h.tokenizer.encode(t, { addSpecialTokens: true }),
      g.tokenizer.encode(t, { addSpecialTokens: true }),
      `with BOS: ${t}`,
    );
    const ids = g.tokenizer.encode(t);
    assert.equal(h.tokenizer.decode(ids), g.tokenizer.decode(ids), `decode of ${JSON.stringify(t)}`);
  }
  const gw = floatWeights(g.weights),
    hw = floatWeights(h.weights);
  for (let l = 0; l < g.config.numLayers; l++)
    for (const n of LINEAR_NAMES) assert.deepEqual(hw.layers[l][n], gw.layers[l][n], `layer ${l} ${n}`);
  const a = cli(['generate', '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--max-new-tokens', '16', '--json']);
  const b = cli(['generate', '--model', out, '--prompt', 'Once upon a time', '--max-new-tokens', '16', '--json']);
  assert.deepEqual(JSON.parse(b.stdout).tokens, JSON.parse(a.stdout).tokens);
  assert.deepEqual(JSON.parse(b.stdout).promptTokens, JSON.parse(a.stdout).promptTokens, 'BOS added as the GGUF says');
});

test('convert --to hf: a quantized GGUF comes out dequantized, in bf16 or f16 on request; bad options are refused', () => {
  const dir = join(root, 'src');
  writeRandomModelDir(dir, tinyRawConfig('llama', { hidden_size: 256, intermediate_size: 512, head_dim: 64 }), {
    tokenizerFrom: 'bytes',
    seed: 3,
  });
  const m = loadModelDir(dir);
  const q = join(root, 'q.gguf');
  writeGguf(q, m.config, m.weights, m.tokenizer, { dtype: 'q8_0' });
  const out = join(root, 'q-hf');
  assert.equal(cli(['convert', '--model', q, '--to', 'hf', '--out', out, '--dtype', 'bf16']).status, 0);
  const raw = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(raw.torch_dtype, 'bfloat16');
  assert.deepEqual(parseConfig(raw), loadModelDir(q).config);
  const back = loadModelDir(out);
  const want = floatWeights(loadModelDir(q).weights).layers[0].q;
  const got = floatWeights(back.weights).layers[0].q;
  // bf16 of the dequantized values
  for (let i = 0; i < want.length; i += 97)
    assert.ok(Math.abs(got[i] - want[i]) <= Math.abs(want[i]) * 2 ** -8, `q[${i}]: ${got[i]} vs ${want[i]}`);
  assert.equal(back.tokenizer.encode('Hello').length, m.tokenizer.encode('Hello').length);
  const bad = cli(['convert', '--model', q, '--to', 'hf', '--out', join(root, 'x'), '--dtype', 'q4_0']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--to hf takes --dtype f32, f16 or bf16, got "q4_0"/);
  assert.match(cli(['convert', '--model', q, '--to', 'onnx', '--out', join(root, 'y')]).stderr, /--to must be gguf or hf, got "onnx"/);
});
