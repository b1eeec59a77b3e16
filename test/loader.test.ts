import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, unlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvevictError } from '../src/errors.js';
import { loadConfig } from '../src/model/config.js';
import { loadModelDir } from '../src/model/load.js';
import { writeSafetensors } from '../src/model/safetensors.js';
import { floatWeights, loadWeights, tensorSlots, weightsToTensors } from '../src/model/weights.js';
import type { FloatWeights as Weights } from '../src/model/types.js';
import { smolRawConfig, tinyConfig, tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';

const root = mkdtempSync(join(tmpdir(), 'kvevict-loader-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const newDir = (name: string) => join(root, `${name}-${dirCount++}`);

/** Round to a binary float with `mantissa` explicit bits and minimum normal exponent `minExp`, ties to even (float64 arithmetic). */
function roundToFloat(x: number, mantissa: number, minExp: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const ax = Math.abs(x);
  let e = Math.floor(Math.log2(ax));
  while (2 ** e > ax) e--;
  while (2 ** (e + 1) <= ax) e++;
  const ulp = 2 ** (Math.max(e, minExp) - mantissa);
  const q = ax / ulp;
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  return Math.sign(x) * r * ulp;
}
const roundBf16 = (x: number) => roundToFloat(x, 7, -126);
const roundF16 = (x: number) => roundToFloat(x, 10, -14);

function allArrays(w: Weights): Float32Array[] {
  const out = [w.embed, w.finalNorm, w.lmHead];
  for (const L of w.layers) {
    out.push(L.inputNorm, L.q, L.k, L.v, L.o, L.postNorm, L.gate, L.up, L.down);
    for (const a of [L.qBias, L.kBias, L.vBias, L.qNorm, L.kNorm]) if (a) out.push(a);
  }
  return out;
}

function assertWeightsEqual(a: Weights, b: Weights, map: (x: number) => number = (x) => x): void {
  const xs = allArrays(a);
  const ys = allArrays(b);
  assert.equal(xs.length, ys.length);
  xs.forEach((x, i) => {
    assert.equal(x.length, ys[i].length);
    for (let j = 0; j < x.length; j++) {
      if (map(x[j]) !== ys[i][j]) assert.fail(`array ${i} element ${j}: expected ${map(x[j])} (from ${x[j]}), got ${ys[i][j]}`);
    }
  });
}

function throwsKv(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KvevictError, `expected KvevictError, got ${String(e)}`);
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(e.message.includes(p), `message "${e.message}" should name "${p}"`);
      else assert.match(e.message, p);
    }
    assert.ok(!e.message.includes('\n'), 'one-line message');
    return true;
  });
}

test('F32 model folder loads exactly; tied lmHead is the embed array', () => {
  const dir = newDir('llama');
  const { weights, config } = writeRandomModelDir(dir, tinyRawConfig('llama'), { seed: 11 });
  const m = loadModelDir(dir);
  assert.deepEqual(m.config, config);
  assertWeightsEqual(weights, floatWeights(m.weights));
  assert.equal(m.weights.lmHead, m.weights.embed);
  assert.ok(m.weights.layers.every((L) => L.qBias === null && L.qNorm === null));
  assert.equal(m.tokenizer.vocabSize, 259);
});

test('BF16 and F16 weights load as the round-to-nearest-even values of the f32 originals', () => {
  for (const [dtype, round] of [
    ['BF16', roundBf16],
    ['F16', roundF16],
  ] as const) {
    const dir = newDir(dtype);
    // scale 0.3 reaches F16 subnormals rarely, 1e-5-ish values via the small ones; add extremes below
    const { weights, config } = writeRandomModelDir(dir, tinyRawConfig('llama'), { seed: 5, dtype, scale: 0.3 });
    const loaded = loadWeights(dir, config);
    assertWeightsEqual(weights, loaded, round);
    // the stored dtype really is half precision: file is about half the F32 size
    const bytes = statSync(join(dir, 'model.safetensors')).size;
    const values = tensorSlots(config).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    assert.ok(bytes < values * 2 + 4096, `${dtype} file is ${bytes} bytes for ${values} values`);
  }
  // edge values: subnormal, tie cases, large
  const cfg = tinyConfig('llama', { num_hidden_layers: 1 });
  const dir = newDir('edges');
  const { weights } = writeRandomModelDir(dir, tinyRawConfig('llama', { num_hidden_layers: 1 }), { seed: 1 });
  const special = [1e-7, -3e-6, 6.1e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 65504, -0.1, 2.5e-8];
  weights.embed.set(special);
  for (const dtype of ['F16', 'BF16'] as const) {
    writeSafetensors(join(dir, 'model.safetensors'), weightsToTensors(cfg, weights, dtype));
    const loaded = loadWeights(dir, cfg);
    const round = dtype === 'F16' ? roundF16 : roundBf16;
    special.forEach((x, i) => assert.equal(loaded.embed[i], round(Math.fround(x)), `${dtype} ${x}`));
  }
});

test('sharded weights (index + 3 files) load the same as a single file', () => {
  const one = newDir('single');
  const many = newDir('sharded');
  const raw = tinyRawConfig('mistral');
  writeRandomModelDir(one, raw, { seed: 7 });
  writeRandomModelDir(many, raw, { seed: 7, shards: 3 });
  const shards = readdirSync(many).filter((f) => /^model-\d{5}-of-00003\.safetensors$/.test(f));
  assert.equal(shards.length, 3);
  assert.ok(!existsSync(join(many, 'model.safetensors')));
  const index = JSON.parse(readFileSync(join(many, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  assert.equal(new Set(Object.values(index.weight_map)).size, 3);
  const a = loadModelDir(one);
  const b = loadModelDir(many);
  assertWeightsEqual(floatWeights(a.weights), floatWeights(b.weights));
});

test('untied model (mistral) loads lm_head separately', () => {
  const dir = newDir('mistral');
  const { weights, config } = writeRandomModelDir(dir, tinyRawConfig('mistral'), { seed: 3 });
  assert.equal(config.tieWordEmbeddings, false);
  const w = loadWeights(dir, config);
  assert.notEqual(w.lmHead, w.embed);
  assertWeightsEqual(weights, w);
  assert.notDeepEqual(Array.from(w.lmHead.subarray(0, 8)), Array.from(w.embed.subarray(0, 8)));
});

test('qwen2 biases and qwen3 q/k norms are loaded', () => {
  const d2 = newDir('qwen2');
  const q2 = writeRandomModelDir(d2, tinyRawConfig('qwen2'), { seed: 21 });
  assert.equal(q2.config.attentionBias, true);
  const w2 = loadWeights(d2, q2.config);
  assertWeightsEqual(q2.weights, w2);
  assert.equal(w2.layers[1].qBias?.length, 4 * 16);
  assert.equal(w2.layers[1].vBias?.length, 2 * 16);
  assert.equal(w2.layers[0].qNorm, null);

  const d3 = newDir('qwen3');
  const q3 = writeRandomModelDir(d3, tinyRawConfig('qwen3'), { seed: 22 });
  assert.equal(q3.config.qkNorm, true);
  assert.equal(q3.config.headDim, 24);
  const w3 = loadWeights(d3, q3.config);
  assertWeightsEqual(q3.weights, w3);
  assert.equal(w3.layers[1].kNorm?.length, 24);
  assert.equal(w3.layers[0].q.length, 4 * 24 * 64);
  assert.equal(w3.layers[0].qBias, null);
});

test('exact-shape SmolLM2-135M layers (2 of 30) in BF16 load with the real tokenizer', () => {
  const dir = newDir('smol');
  const { weights, config } = writeRandomModelDir(dir, smolRawConfig({ num_hidden_layers: 2 }), { seed: 2, dtype: 'BF16' });
  const m = loadModelDir(dir);
  assert.equal(m.config.hiddenSize, 576);
  assert.equal(m.config.numKvHeads, 3);
  assert.equal(m.weights.embed.length, 49152 * 576);
  assert.equal(m.weights.layers[1].k.length, 3 * 64 * 576);
  assert.equal(m.weights.layers[1].gate.length, 1536 * 576);
  assert.equal(m.weights.lmHead, m.weights.embed);
  assert.equal(m.tokenizer.vocabSize, 49152);
  assert.deepEqual(m.tokenizer.eosTokenIds, [2]);
  // spot-check values across tensors against the BF16 rounding
  for (const [a, b] of [
    [weights.embed, floatWeights(m.weights).embed],
    [weights.layers[1].down, floatWeights(m.weights).layers[1].down],
    [weights.finalNorm, m.weights.finalNorm],
  ]) {
    for (let i = 0; i < a.length; i += 997) assert.equal(b[i], roundBf16(a[i]));
  }
  assert.deepEqual(config, m.config);
});

// ---------------------------------------------------------------- errors

function smallModel(name: string, shards = 1): string {
  const dir = newDir(name);
  writeRandomModelDir(dir, tinyRawConfig('llama', { num_hidden_layers: 1 }), { seed: 1, shards });
  return dir;
}

test('missing folder and missing config.json name the path', () => {
  const nowhere = join(root, 'no-such-model');
  throwsKv(() => loadModelDir(nowhere), nowhere, 'not found');
  const dir = smallModel('noconfig');
  unlinkSync(join(dir, 'config.json'));
  throwsKv(() => loadModelDir(dir), join(dir, 'config.json'), 'not found');
});

test('unsupported model_type and invalid config JSON name config.json', () => {
  const dir = smallModel('badtype');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...tinyRawConfig('llama'), model_type: 'gpt_neox' }));
  throwsKv(() => loadModelDir(dir), join(dir, 'config.json'), 'gpt_neox');
  writeFileSync(join(dir, 'config.json'), '{"model_type": "llama",');
  throwsKv(() => loadModelDir(dir), join(dir, 'config.json'), 'invalid JSON');
});

test('missing weights, missing tokenizer.json name the folder or file', () => {
  const dir = smallModel('noweights');
  unlinkSync(join(dir, 'model.safetensors'));
  throwsKv(() => loadModelDir(dir), dir, 'model.safetensors');
  const dir2 = smallModel('notok');
  unlinkSync(join(dir2, 'tokenizer.json'));
  throwsKv(() => loadModelDir(dir2), join(dir2, 'tokenizer.json'));
});

test('missing tensor and wrong shape name the tensor and the file', () => {
  const cfg = tinyConfig('llama', { num_hidden_layers: 1 });
  const dir = smallModel('missing');
  const file = join(dir, 'model.safetensors');
  const w = loadWeights(dir, cfg);
  const tensors = weightsToTensors(cfg, w).filter((t) => t.name !== 'model.layers.0.mlp.up_proj.weight');
  writeSafetensors(file, tensors);
  throwsKv(() => loadWeights(dir, cfg), file, 'missing tensor model.layers.0.mlp.up_proj.weight');

  const wrong = weightsToTensors(cfg, w).map((t) =>
    t.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...t, shape: [t.shape[1], t.shape[0]] } : t,
  );
  writeSafetensors(file, wrong);
  throwsKv(() => loadWeights(dir, cfg), file, 'model.layers.0.self_attn.k_proj.weight', '[64, 32]', '[32, 64]');

  // config asks for a bigger MLP than the file holds
  writeSafetensors(file, weightsToTensors(cfg, w));
  const bigger = tinyConfig('llama', { num_hidden_layers: 1, intermediate_size: 96 });
  throwsKv(() => loadWeights(dir, bigger), file, 'model.layers.0.mlp.gate_proj.weight');
});

/** A safetensors file built by hand: header JSON and raw bytes. */
function rawSafetensors(file: string, header: object, data: Buffer, declaredLen?: number): void {
  const hb = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(declaredLen ?? hb.length));
  writeFileSync(file, Buffer.concat([len, hb, data]));
}

test('unsupported dtype, truncated file and header length past the end name the file', () => {
  const cfg = tinyConfig('llama', { num_hidden_layers: 1 });
  const dir = smallModel('bytes');
  const file = join(dir, 'model.safetensors');
  rawSafetensors(file, { 'model.embed_tokens.weight': { dtype: 'I8', shape: [4], data_offsets: [0, 4] } }, Buffer.alloc(4));
  throwsKv(() => loadWeights(dir, cfg), file, 'model.embed_tokens.weight', 'I8');

  rawSafetensors(file, { 'model.norm.weight': { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(16), 1 << 20);
  throwsKv(() => loadWeights(dir, cfg), file, 'header length');

  writeRandomModelDir(dir, tinyRawConfig('llama', { num_hidden_layers: 1 }), { seed: 1 });
  truncateSync(file, statSync(file).size - 100);
  throwsKv(() => loadWeights(dir, cfg), file, 'truncated');

  writeFileSync(file, Buffer.alloc(5));
  throwsKv(() => loadWeights(dir, cfg), file, 'truncated');
});

test('invalid shard index: bad JSON, no weight_map, missing shard file', () => {
  const cfg = tinyConfig('llama', { num_hidden_layers: 1 });
  const dir = smallModel('index', 2);
  const index = join(dir, 'model.safetensors.index.json');
  const good = readFileSync(index, 'utf8');
  writeFileSync(index, good.slice(0, 40));
  throwsKv(() => loadWeights(dir, cfg), index, 'invalid JSON');
  writeFileSync(index, JSON.stringify({ metadata: {} }));
  throwsKv(() => loadWeights(dir, cfg), index, 'weight_map');
  writeFileSync(index, good);
  const shard = join(dir, 'model-00002-of-00002.safetensors');
  unlinkSync(shard);
  throwsKv(() => loadWeights(dir, cfg), shard, 'not found');
  // a tensor the index does not list
  const parsed = JSON.parse(good) as { weight_map: Record<string, string> };
  delete parsed.weight_map['model.norm.weight'];
  writeFileSync(index, JSON.stringify(parsed));
  writeRandomModelDir(dir, tinyRawConfig('llama', { num_hidden_layers: 1 }), { seed: 1, shards: 2 });
  writeFileSync(index, JSON.stringify(parsed));
  throwsKv(() => loadWeights(dir, cfg), 'model.norm.weight', index);
});

test('loadConfig adds generation_config.json eos ids; the tokenizer merges them with eos_token', () => {
  const dir = smallModel('gencfg');
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [258, 256] }));
  assert.deepEqual(loadConfig(dir).eosTokenIds, [258, 256]);
  const m = loadModelDir(dir);
  assert.deepEqual([...m.tokenizer.eosTokenIds].sort(), [256, 258]);
});
