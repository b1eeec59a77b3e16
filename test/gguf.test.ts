import { floatWeights } from '../src/model/weights.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvevictError } from '../src/errors.js';
import { run as convertRun } from '../src/cli/convert.js';
import {
  GgmlType,
  GgufTokenType,
  GgufType,
  llama3RopeFactors,
  loadGguf,
  permuteQK,
  readGguf,
  readGgufTensorF32,
  unpermuteQK,
  writeGguf,
  writeGgufFile,
} from '../src/model/gguf.js';
import type { GgufFile } from '../src/model/gguf.js';
import { loadModelDir } from '../src/model/load.js';
import { LlamaModel } from '../src/model/llama.js';
import type { ModelConfig } from '../src/model/config.js';
import type { FloatWeights as Weights } from '../src/model/types.js';
import { Rng } from '../src/util/rng.js';
import { smolDir, smolRawConfig, tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { ByteCursor } from './helpers/byte-cursor.js';
import type { TinyKind } from './helpers/random-model.js';

const root = mkdtempSync(join(tmpdir(), 'kvevict-gguf-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
let n = 0;
const newDir = (name: string) => join(root, `${name}-${n++}`);

/** convert_hf_to_gguf.py's permute as numpy does it: reshape(heads, 2, d/2, cols).swapaxes(1, 2).reshape(rows, cols). */
function numpyPermute(w: Float32Array, heads: number, cols: number): Float32Array {
  const d = w.length / cols / heads;
  const half = d / 2;
  const out = new Float32Array(w.length);
  // out[h][j][i][c] = w[h][i][j][c]
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < half; j++)
      for (let i = 0; i < 2; i++)
        for (let c = 0; c < cols; c++) out[((h * half + j) * 2 + i) * cols + c] = w[((h * 2 + i) * half + j) * cols + c];
  return out;
}

test('Q/K permutation equals the converter definition and unpermute inverts it', () => {
  const rng = new Rng(4);
  for (const [heads, d, cols] of [
    [4, 16, 8],
    [3, 64, 5],
    [2, 24, 1],
    [1, 2, 3],
  ]) {
    const w = rng.normalArray(heads * d * cols);
    const p = permuteQK(w, heads, cols);
    assert.deepEqual(p, numpyPermute(w, heads, cols));
    assert.deepEqual(unpermuteQK(p, heads, cols), w);
    if (d > 2) assert.notDeepEqual(p, w);
  }
});

/** The GGUF header walked by hand (independent of readGguf): metadata as plain values and tensor records. */
function walkGguf(file: string): {
  version: number;
  kv: Map<string, unknown>;
  tensors: { name: string; dims: number[]; type: number; offset: number }[];
  dataStart: number;
} {
  const b = readFileSync(file);
  const c = new ByteCursor(b, 4);
  const { u32, u64, str: s } = c;
  const scalar = (t: number): unknown => {
    switch (t) {
      case 4:
        return u32();
      case 5:
        return c.i32();
      case 6:
        return c.f32();
      case 7:
        return c.u8() === 1;
      case 8:
        return s();
      case 10:
        return u64();
      default:
        throw new Error(`type ${t} not expected in files written here`);
    }
  };
  assert.equal(b.toString('ascii', 0, 4), 'GGUF');
  const version = u32();
  const nt = u64();
  const nkv = u64();
  const kv = new Map<string, unknown>();
  for (let i = 0; i < nkv; i++) {
    const key = s();
    const t = u32();
    if (t === 9) {
      const et = u32();
      const len = u64();
      const arr: unknown[] = [];
      for (let j = 0; j < len; j++) arr.push(scalar(et));
      kv.set(key, arr);
    } else kv.set(key, scalar(t));
  }
  const tensors = [];
  for (let i = 0; i < nt; i++) {
    const name = s();
    const nd = u32();
    const dims = [];
    for (let j = 0; j < nd; j++) dims.push(u64());
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  return { version, kv, tensors, dataStart: Math.ceil(c.p / 32) * 32 };
}

/** Expected llama.cpp tensors of a model: name -> [numpy shape, source data (HF layout)]. */
function expectedTensors(cfg: ModelConfig, w: Weights): Map<string, { shape: number[]; data: Float32Array; qk?: number }> {
  const m = new Map<string, { shape: number[]; data: Float32Array; qk?: number }>();
  const { hiddenSize: h, intermediateSize: inter, numHeads: H, numKvHeads: Hkv, headDim: d, vocabSize: v } = cfg;
  m.set('token_embd.weight', { shape: [v, h], data: w.embed });
  w.layers.forEach((L, l) => {
    const p = `blk.${l}.`;
    m.set(p + 'attn_norm.weight', { shape: [h], data: L.inputNorm });
    m.set(p + 'attn_q.weight', { shape: [H * d, h], data: L.q, qk: H });
    m.set(p + 'attn_k.weight', { shape: [Hkv * d, h], data: L.k, qk: Hkv });
    m.set(p + 'attn_v.weight', { shape: [Hkv * d, h], data: L.v });
    m.set(p + 'attn_output.weight', { shape: [h, H * d], data: L.o });
    if (L.qBias) m.set(p + 'attn_q.bias', { shape: [H * d], data: L.qBias, qk: H });
    if (L.kBias) m.set(p + 'attn_k.bias', { shape: [Hkv * d], data: L.kBias, qk: Hkv });
    if (L.vBias) m.set(p + 'attn_v.bias', { shape: [Hkv * d], data: L.vBias });
    if (L.qNorm) m.set(p + 'attn_q_norm.weight', { shape: [d], data: L.qNorm });
    if (L.kNorm) m.set(p + 'attn_k_norm.weight', { shape: [d], data: L.kNorm });
    m.set(p + 'ffn_norm.weight', { shape: [h], data: L.postNorm });
    m.set(p + 'ffn_gate.weight', { shape: [inter, h], data: L.gate });
    m.set(p + 'ffn_up.weight', { shape: [inter, h], data: L.up });
    m.set(p + 'ffn_down.weight', { shape: [h, inter], data: L.down });
  });
  m.set('output_norm.weight', { shape: [h], data: w.finalNorm });
  if (!cfg.tieWordEmbeddings) m.set('output.weight', { shape: [v, h], data: w.lmHead });
  return m;
}

function roundF16(x: number): number {
  if (x === 0) return x;
  const ax = Math.abs(x);
  let e = Math.floor(Math.log2(ax));
  while (2 ** e > ax) e--;
  while (2 ** (e + 1) <= ax) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const q = ax / ulp;
  let r = Math.floor(q);
  if (q - r > 0.5 || (q - r === 0.5 && r % 2 === 1)) r++;
  return Math.sign(x) * r * ulp;
}

function checkRoundTrip(kind: TinyKind, dtype: 'f32' | 'f16', overrides: Record<string, unknown> = {}): void {
  const dir = newDir(kind);
  writeRandomModelDir(dir, tinyRawConfig(kind, overrides), { seed: 31 });
  const m = loadModelDir(dir);
  const cfg = m.config;
  const file = join(dir, 'model.gguf');
  writeGguf(file, cfg, m.weights, m.tokenizer, { dtype });
  const arch = kind === 'qwen2' || kind === 'qwen3' ? kind : 'llama';
  const permuted = arch === 'llama';

  const hand = walkGguf(file);
  assert.equal(hand.version, 3);
  const kv = hand.kv;
  assert.equal(kv.get('general.architecture'), arch);
  assert.equal(kv.get(`${arch}.block_count`), 2);
  assert.equal(kv.get(`${arch}.embedding_length`), 64);
  assert.equal(kv.get(`${arch}.feed_forward_length`), 128);
  assert.equal(kv.get(`${arch}.attention.head_count`), 4);
  assert.equal(kv.get(`${arch}.attention.head_count_kv`), 2);
  assert.equal(kv.get(`${arch}.context_length`), 2048);
  assert.equal(kv.get(`${arch}.rope.dimension_count`), cfg.headDim);
  assert.equal(kv.get(`${arch}.rope.freq_base`), Math.fround(cfg.ropeTheta));
  assert.equal(kv.get(`${arch}.attention.layer_norm_rms_epsilon`), Math.fround(cfg.rmsNormEps));
  assert.equal(kv.get(`${arch}.attention.key_length`), kind === 'qwen3' ? 24 : undefined);
  assert.equal(kv.get('general.file_type'), dtype === 'f16' ? 1 : 0);
  assert.equal(kv.get('tokenizer.ggml.model'), 'gpt2');
  assert.equal(kv.get('tokenizer.ggml.pre'), 'default');
  assert.equal(kv.get('tokenizer.ggml.bos_token_id'), 257);
  assert.equal(kv.get('tokenizer.ggml.eos_token_id'), 258);
  assert.equal(kv.get('tokenizer.chat_template'), m.tokenizer.chatTemplate);
  const tokens = kv.get('tokenizer.ggml.tokens') as string[];
  const types = kv.get('tokenizer.ggml.token_type') as number[];
  assert.equal(tokens.length, 300);
  assert.equal(tokens[32], 'Ġ');
  assert.equal(tokens[258], '<|im_end|>');
  assert.equal(types[97], GgufTokenType.NORMAL);
  assert.equal(types[258], GgufTokenType.CONTROL);
  assert.equal(tokens[299], '[PAD299]');
  assert.equal(types[299], GgufTokenType.UNUSED);
  assert.deepEqual(kv.get('tokenizer.ggml.merges'), []);

  const expected = expectedTensors(cfg, floatWeights(m.weights));
  if (kind === 'llama3') expected.set('rope_freqs.weight', { shape: [cfg.headDim / 2], data: llama3RopeFactors(cfg) });
  assert.deepEqual(new Set(hand.tensors.map((t) => t.name)), new Set(expected.keys()));
  const bytes = readFileSync(file);
  for (const t of hand.tensors) {
    const e = expected.get(t.name)!;
    assert.deepEqual(t.dims, [...e.shape].reverse(), t.name);
    assert.equal(t.offset % 32, 0, `${t.name} offset aligned`);
    const isMatrix = e.shape.length === 2;
    assert.equal(t.type, isMatrix && dtype === 'f16' ? GgmlType.F16 : GgmlType.F32, t.name);
    const want = e.qk !== undefined && permuted ? numpyPermute(e.data, e.qk, isMatrix ? e.shape[1] : 1) : e.data;
    const at = hand.dataStart + t.offset;
    for (let i = 0; i < want.length; i += Math.max(1, Math.floor(want.length / 257))) {
      if (t.type === GgmlType.F32) assert.equal(bytes.readFloatLE(at + 4 * i), want[i], `${t.name}[${i}]`);
      else assert.equal(roundF16(want[i]), readHalf(bytes.readUInt16LE(at + 2 * i)), `${t.name}[${i}]`);
    }
  }
  // last tensor's data ends inside the file, padded to the alignment
  assert.equal(statSync(file).size % 32, 0);

  // reading back gives the same model (exact for F32: the permutation is undone)
  const g = readGguf(file);
  assert.equal(g.dataOffset, hand.dataStart);
  if (kind === 'llama3') {
    // the scaling comes back as its table of factors, and the model computes as the folder it came from
    const back = loadGguf(file);
    assert.deepEqual(back.config.ropeFreqFactors, Array.from(llama3RopeFactors(cfg)));
    assert.equal(back.config.ropeScaling, null);
    const tokens = Int32Array.from([257, 72, 105, 33, 32, 84]);
    const positions = Int32Array.from([0, 1, 2, 900, 1500, 2000]);
    const a = new LlamaModel(cfg, m.weights);
    const b = new LlamaModel(back.config, back.weights);
    const la = a.forward({ tokens, positions, cache: a.newCache() });
    const lb = b.forward({ tokens, positions, cache: b.newCache() });
    for (let i = 0; i < la.length; i++)
      assert.ok(Math.abs(la[i] - lb[i]) <= 1e-4 * (1 + Math.abs(la[i])), `logit ${i}: ${lb[i]} vs ${la[i]}`);
  } else {
    const back = loadGguf(file);
    for (const key of [
      'hiddenSize',
      'intermediateSize',
      'numLayers',
      'numHeads',
      'numKvHeads',
      'headDim',
      'vocabSize',
      'tieWordEmbeddings',
      'attentionBias',
      'qkNorm',
      'maxPositions',
      'ropeTheta',
    ] as const) {
      assert.equal(back.config[key], cfg[key], key);
    }
    const exp = expectedTensors(cfg, floatWeights(m.weights));
    const got = expectedTensors(back.config, floatWeights(back.weights));
    for (const [name, e] of exp) {
      const b = got.get(name)!.data;
      for (let i = 0; i < e.data.length; i++) {
        const want = dtype === 'f32' || e.shape.length === 1 ? e.data[i] : roundF16(e.data[i]);
        if (b[i] !== want) assert.fail(`${name}[${i}]: ${b[i]} != ${want}`);
      }
    }
    assert.equal(back.weights.lmHead === back.weights.embed, cfg.tieWordEmbeddings);
    const s = 'héllo <|im_start|> wörld';
    assert.deepEqual(back.tokenizer.encode(s), m.tokenizer.encode(s));
    assert.equal(back.tokenizer.chatTemplate, m.tokenizer.chatTemplate);
  }
}

function readHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const f = h & 1023;
  return e === 0 ? s * f * 2 ** -24 : s * (1 + f / 1024) * 2 ** (e - 15);
}

for (const kind of ['llama', 'mistral', 'qwen2', 'qwen3', 'llama3'] as const) {
  test(`GGUF write/read round trip: ${kind} F32`, () => checkRoundTrip(kind, 'f32'));
}
test('GGUF write/read round trip: llama F16 (matrices F16, norms F32)', () => checkRoundTrip('llama', 'f16'));
test('GGUF write/read round trip: qwen2 F16 (biases F32)', () => checkRoundTrip('qwen2', 'f16'));
test('GGUF write/read round trip: llama with q/k/v biases (q/k biases permuted too)', () =>
  checkRoundTrip('llama', 'f32', { attention_bias: true }));

test('llama3 rope_freqs follow convert_hf_to_gguf.py', () => {
  const dir = newDir('l3');
  const { config } = writeRandomModelDir(dir, tinyRawConfig('llama3', { head_dim: 64, hidden_size: 256 }), { seed: 1 });
  const s = config.ropeScaling!;
  const got = llama3RopeFactors(config);
  const low = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const high = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  let sawSmooth = false,
    sawOne = false,
    sawFactor = false;
  for (let i = 0; i < config.headDim / 2; i++) {
    const freq = 1 / config.ropeTheta ** ((2 * i) / config.headDim);
    const wavelen = (2 * Math.PI) / freq;
    let want: number;
    if (wavelen < high) {
      want = 1;
      sawOne = true;
    } else if (wavelen > low) {
      want = s.factor;
      sawFactor = true;
    } else {
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      want = 1 / ((1 - smooth) / s.factor + smooth);
      sawSmooth = true;
    }
    assert.ok(Math.abs(got[i] - want) <= 1e-6 * want, `factor ${i}: ${got[i]} vs ${want}`);
  }
  assert.ok(sawOne && sawFactor && sawSmooth, 'the test config covers all three bands');
});

test('SmolLM2 tokenizer in GGUF: tokens, types, merges, pre "smollm", and the rebuilt tokenizer encodes identically', () => {
  const dir = newDir('smoltok');
  // the real tokenizer with small matrices: hidden 64, 1 layer
  writeRandomModelDir(
    dir,
    smolRawConfig({ hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128, num_hidden_layers: 1 }),
    { seed: 1, dtype: 'BF16' },
  );
  const m = loadModelDir(dir);
  const file = join(dir, 'smol.gguf');
  writeGguf(file, m.config, m.weights, m.tokenizer, { dtype: 'f16' });
  const g: GgufFile = readGguf(file);
  const val = (k: string) => g.metadata.get(k)?.value;
  const vocab = JSON.parse(readFileSync(join(smolDir, 'vocab.json'), 'utf8')) as Record<string, number>;
  const tokens = val('tokenizer.ggml.tokens') as string[];
  assert.equal(tokens.length, 49152);
  for (const [tok, id] of Object.entries(vocab)) if (tokens[id] !== tok) assert.fail(`token ${id}: ${tokens[id]} != ${tok}`);
  const types = val('tokenizer.ggml.token_type') as number[];
  assert.deepEqual(types.slice(0, 17), new Array(17).fill(GgufTokenType.CONTROL));
  assert.ok(types.slice(17).every((t) => t === GgufTokenType.NORMAL));
  const merges = readFileSync(join(smolDir, 'merges.txt'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#version'));
  assert.deepEqual(val('tokenizer.ggml.merges'), merges);
  assert.equal(val('tokenizer.ggml.pre'), 'smollm');
  assert.equal(val('tokenizer.ggml.bos_token_id'), 1);
  assert.equal(val('tokenizer.ggml.eos_token_id'), 2);
  assert.equal(val('tokenizer.ggml.padding_token_id'), 2);
  assert.equal(val('tokenizer.ggml.unknown_token_id'), 0);
  assert.equal(val('tokenizer.ggml.add_bos_token'), false);
  assert.equal(val('general.architecture'), 'llama');
  assert.match(val('tokenizer.chat_template') as string, /<\|im_start\|>/);
  const embd = g.tensors.find((t) => t.name === 'token_embd.weight')!;
  assert.deepEqual(embd.dims, [64, 49152]);
  assert.equal(embd.type, GgmlType.F16);
  assert.equal(readGgufTensorF32(g, embd)[5], roundF16(floatWeights(m.weights).embed[5]));

  const back = loadModelDir(file); // a .gguf path loads like a folder
  assert.equal(back.config.vocabSize, 49152);
  assert.equal(back.weights.lmHead, back.weights.embed);
  const texts = ['Hello world, 2024!', "def f(x):\n    return x ** 2  # it's", 'Ünïcödé 日本語 🎉', '<|im_start|>user\nhi<|im_end|>\n'];
  for (const t of texts) {
    assert.deepEqual(back.tokenizer.encode(t), m.tokenizer.encode(t), t);
    assert.equal(back.tokenizer.decode(back.tokenizer.encode(t)), t);
  }
  const msgs = [{ role: 'user', content: 'hi' }];
  assert.equal(
    back.tokenizer.applyChatTemplate(msgs, { addGenerationPrompt: true }),
    m.tokenizer.applyChatTemplate(msgs, { addGenerationPrompt: true }),
  );
});

test('every metadata value type: written as the GGUF spec lays it out, and read back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-gguf-kv-'));
  try {
    // [type, value, the value's bytes by the spec (little-endian)]
    const le = (n: number, write: (b: Buffer) => void) => {
      const b = Buffer.alloc(n);
      write(b);
      return b;
    };
    const cases: [GgufType, number | bigint | boolean | string, Buffer][] = [
      [GgufType.UINT8, 250, Buffer.of(250)],
      [GgufType.INT8, -7, Buffer.of(0xf9)],
      [GgufType.UINT16, 65000, Buffer.of(0xe8, 0xfd)],
      [GgufType.INT16, -2, Buffer.of(0xfe, 0xff)],
      [GgufType.UINT32, 4_000_000_000, Buffer.of(0x00, 0x28, 0x6b, 0xee)],
      [GgufType.INT32, -100_000, Buffer.of(0x60, 0x79, 0xfe, 0xff)],
      [GgufType.FLOAT32, -1.5, Buffer.of(0x00, 0x00, 0xc0, 0xbf)],
      [GgufType.FLOAT64, 0.1, le(8, (b) => b.writeDoubleLE(0.1))],
      [GgufType.UINT64, 2n ** 63n + 5n, Buffer.of(5, 0, 0, 0, 0, 0, 0, 0x80)],
      [GgufType.INT64, -3, Buffer.of(0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)],
      [GgufType.BOOL, true, Buffer.of(1)],
      [GgufType.STRING, 'naïve', Buffer.concat([Buffer.of(6, 0, 0, 0, 0, 0, 0, 0), Buffer.from('naïve', 'utf8')])],
    ];
    const md = new Map(cases.map(([type, value], i) => [`k${i}`, { type, value }]));
    const file = join(dir, 'kv.gguf');
    writeGgufFile(file, md, []);
    // the header as the spec says: magic, version 3, tensor count, kv count, then key, type, value
    const want: Buffer[] = [Buffer.from('GGUF'), Buffer.of(3, 0, 0, 0), Buffer.alloc(8), Buffer.of(cases.length, 0, 0, 0, 0, 0, 0, 0)];
    cases.forEach(([type, , bytes], i) => {
      want.push(Buffer.of(`k${i}`.length, 0, 0, 0, 0, 0, 0, 0), Buffer.from(`k${i}`), Buffer.of(type, 0, 0, 0), bytes);
    });
    const head = Buffer.concat(want);
    assert.deepEqual(readFileSync(file).subarray(0, head.length), head);
    const g = readGguf(file);
    cases.forEach(([, value], i) => assert.equal(g.metadata.get(`k${i}`)!.value, value, `k${i}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readGguf rejects a non-GGUF file and a truncated one, naming the file', () => {
  const dir = newDir('bad');
  writeRandomModelDir(dir, tinyRawConfig('llama', { num_hidden_layers: 1 }), { seed: 2 });
  const m = loadModelDir(dir);
  const file = join(dir, 'm.gguf');
  writeGguf(file, m.config, m.weights, m.tokenizer);
  truncateSync(file, statSync(file).size - 64);
  assert.throws(
    () => readGguf(file),
    (e: unknown) => e instanceof KvevictError && e.message.includes(file) && e.message.includes('truncated'),
  );
  truncateSync(file, 1000);
  assert.throws(
    () => readGguf(file),
    (e: unknown) => e instanceof KvevictError && e.message.includes(file) && e.message.includes('truncated'),
  );
  writeFileSync(file, 'not a gguf file at all, just some text');
  assert.throws(
    () => readGguf(file),
    (e: unknown) => e instanceof KvevictError && e.message.includes(file) && e.message.includes('not a GGUF'),
  );
  assert.throws(() => readGguf(join(dir, 'none.gguf')), KvevictError);
});

test('kvevict convert writes a GGUF and rejects bad options', async () => {
  const dir = newDir('cli');
  writeRandomModelDir(dir, tinyRawConfig('qwen2'), { seed: 9 });
  const out = join(dir, 'out.gguf');
  const write = process.stdout.write;
  let printed = '';
  process.stdout.write = ((s: string) => {
    printed += s;
    return true;
  }) as typeof process.stdout.write;
  try {
    assert.equal(await convertRun(['--model', dir, '--to', 'gguf', '--out', out, '--dtype', 'f16']), 0);
  } finally {
    process.stdout.write = write;
  }
  assert.ok(existsSync(out));
  assert.match(printed, /wrote .*out\.gguf/);
  const g = readGguf(out);
  assert.equal(g.metadata.get('general.architecture')?.value, 'qwen2');
  assert.equal(g.tensors.find((t) => t.name === 'blk.0.attn_q.weight')?.type, GgmlType.F16);
  await assert.rejects(
    convertRun(['--model', dir, '--out', out, '--dtype', 'q8']),
    (e: unknown) => e instanceof KvevictError && e.message.includes('--dtype'),
  );
  await assert.rejects(
    convertRun(['--model', dir, '--to', 'onnx', '--out', out]),
    (e: unknown) => e instanceof KvevictError && e.message.includes('--to'),
  );
  await assert.rejects(convertRun(['--model', dir]), (e: unknown) => e instanceof KvevictError && e.message.includes('--out'));
  await assert.rejects(
    convertRun(['--model', join(dir, 'nope'), '--out', out]),
    (e: unknown) => e instanceof KvevictError && e.message.includes('nope'),
  );
});
