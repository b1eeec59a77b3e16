/**
 * The model files people have, against llama.cpp (node-llama-cpp in bench/yardstick) in one run:
 * 1. the writer's quantizers against llama.cpp's own quantize_row_*_ref (its libggml-base, through python3
 *    ctypes): byte for byte, every block type;
 * 2. stories260K (the real model) converted to every dtype: llama.cpp loads each file and its greedy tokens are
 *    compared with kvevict's on the same file;
 * 3. speed: SmolLM2-135M and Llama-3.2-1B shapes with random weights (BF16; Q8_0 and Q4_K_M as llama-quantize lays them
 *    out), prefill and decode tokens/s of both engines on the same file, and kvevict's peak RSS (its own process)
 *    against the file size.
 *
 * Standalone: node dist/bench/formats.js [--no-speed | --speed-only] [--shapes 135m,1b] [--contexts 512,2048]
 * [--dtypes bf16,q8_0] (a subset of each shape's formats)
 * (one engine measurement alone: node dist/bench/formats.js --engine FILE CONTEXT DECODE_STEPS [WEIGHTS];
 * a random file kept: node dist/bench/formats.js --write 135m|1b DTYPE FILE)
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateFromTokens } from '../src/generate/pipeline.js';
import {
  GGUF_DTYPES,
  GgmlType,
  GgufType,
  matrixType,
  writeGguf,
  writeGgufFile,
  type GgufDtype,
  type GgufKv,
  type GgufTensorToWrite,
} from '../src/model/gguf.js';
import { ForwardProfile, LlamaModel, type WeightFormat } from '../src/model/llama.js';
import { loadModelDir } from '../src/model/load.js';
import { Bf16Matrix, QUANT_TYPES, QuantMatrix, quantFormat, quantFormatOfGgml, type QuantType } from '../src/quant/formats.js';
import { kernels, loadNative, nativeAddonPath } from '../src/kernels/index.js';
import { loadNativeAddon } from '../src/kernels/native.js';
import type { MatrixWeights } from '../src/kernels/types.js';
import { quantizeMatrix } from '../src/quant/quantize.js';
import { Rng } from '../src/util/rng.js';
import { peakRssBytes, runAndRecord } from './record.js';
import { formatTable } from './table.js';
import { STORIES } from './tokenizer.js';
import { ensureYardstick, llamaCppBench, llamaCppTokenizeAndGreedy, yardstickDir } from './yardstick.js';

const here = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- 1. quantizers, byte for byte

/** libggml-base.so of the installed node-llama-cpp (its prebuilt linux-x64 binaries), or null. */
function ggmlBase(): string | null {
  const dir = join(yardstickDir, 'node_modules', '@node-llama-cpp', 'linux-x64', 'bins', 'linux-x64');
  if (!existsSync(dir)) return null;
  const f = readdirSync(dir).find((n) => n.startsWith('libggml-base') && n.endsWith('.so'));
  return f ? join(dir, f) : null;
}

const GGML_FN: Record<QuantType, string> = {
  q4_0: 'q4_0',
  q4_1: 'q4_1',
  q5_0: 'q5_0',
  q5_1: 'q5_1',
  q8_0: 'q8_0',
  q4_k: 'q4_K',
  q5_k: 'q5_K',
  q6_k: 'q6_K',
};

interface QuantizerRow {
  type: QuantType;
  bytes: number;
  differing: number;
}

function compareQuantizers(dir: string): QuantizerRow[] | string {
  const lib = ggmlBase();
  if (!lib) return 'libggml-base.so not found (bench/yardstick not installed)';
  const rows = 16,
    cols = 1024;
  const rng = new Rng(7);
  // normal weights with outliers, as trained matrices have
  const w = Float32Array.from({ length: rows * cols }, () => rng.normal() * 0.05 * (rng.next() < 0.01 ? 8 : 1));
  writeFileSync(join(dir, 'q-in.bin'), w);
  for (const t of QUANT_TYPES) writeFileSync(join(dir, `q-${t}.bin`), quantizeMatrix(t, w, rows, cols).data);
  const py = `
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1]); d = sys.argv[2]
x = open(d + '/q-in.bin', 'rb').read(); n = len(x) // 4
xb = ctypes.create_string_buffer(x, len(x))
for t, fn in [${QUANT_TYPES.map((t) => `('${t}', '${GGML_FN[t]}')`).join(', ')}]:
    ours = open(d + '/q-' + t + '.bin', 'rb').read()
    out = ctypes.create_string_buffer(len(ours))
    getattr(lib, 'quantize_row_' + fn + '_ref')(xb, out, ctypes.c_int64(n))
    print(t, len(ours), sum(1 for a, b in zip(out.raw, ours) if a != b))
`;
  const r = spawnSync('python3', ['-c', py, lib, dir], { encoding: 'utf8' });
  if (r.status !== 0) return `python3 ctypes failed: ${(r.stderr || '').trim().split('\n').pop()}`;
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => {
      const [type, bytes, differing] = l.split(' ');
      return { type: type as QuantType, bytes: Number(bytes), differing: Number(differing) };
    });
}

// ---------------------------------------------------------------- 2. stories260K in every dtype

interface StoriesRow {
  dtype: GgufDtype;
  fileBytes: number;
  agreeing: number;
  steps: number;
  kvevict: string;
  llamaCpp: string;
}

async function storiesEveryDtype(dir: string, steps = 24): Promise<StoriesRow[]> {
  const src = loadModelDir(STORIES);
  const rows: StoriesRow[] = [];
  for (const dtype of GGUF_DTYPES) {
    const file = join(dir, `stories260K-${dtype}.gguf`);
    writeGguf(file, src.config, src.weights, src.tokenizer, { dtype, name: `stories260K ${dtype}` });
    const m = loadModelDir(file);
    const prompt = m.tokenizer.encode('Once upon a time', { addSpecialTokens: true });
    const ours = generateFromTokens(new LlamaModel(m.config, m.weights), prompt, { maxNewTokens: steps }).tokens;
    const theirs = await llamaCppTokenizeAndGreedy(file, [], prompt, steps);
    let agree = 0;
    while (agree < steps && ours[agree] === theirs.greedy[agree]) agree++;
    rows.push({
      dtype,
      fileBytes: statSync(file).size,
      agreeing: agree,
      steps,
      kvevict: m.tokenizer.decode(ours),
      llamaCpp: m.tokenizer.decode(theirs.greedy),
    });
    process.stderr.write(`  stories260K ${dtype}: ${agree} of ${steps} greedy tokens agree\n`);
  }
  return rows;
}

// ---------------------------------------------------------------- 3. one product per format, against the stream

interface ProductRow {
  format: string;
  mb: number;
  ms: number;
  gbPerS: number;
  gWeightsPerS: number;
}

/**
 * One decode product of a 131,072 x 2,048 matrix per format (a Llama-3 output layer's shape) on the native
 * kernels (2 threads), best of 20: every format's matrix is several times the last-level cache, so the figure is
 * the memory system's rate, comparable with the read ceiling (a 16,384-row matrix partly stayed in a 32 MB L3).
 */
function products(): ProductRow[] {
  const k = kernels();
  const rows = 131072,
    cols = 2048;
  const rng = new Rng(5);
  const x = Float32Array.from({ length: cols }, () => rng.normal());
  const y = new Float32Array(rows);
  const time = (w: MatrixWeights, bytes: number, format: string): ProductRow => {
    for (let i = 0; i < 3; i++) k.sgemv(rows, cols, w, x, y);
    let best = Infinity;
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      k.sgemv(rows, cols, w, x, y);
      best = Math.min(best, performance.now() - t);
    }
    return { format, mb: bytes / 2 ** 20, ms: best, gbPerS: bytes / best / 1e6, gWeightsPerS: (rows * cols) / best / 1e6 };
  };
  const out: ProductRow[] = [];
  const f32 = new Float32Array(rows * cols);
  for (let i = 0; i < f32.length; i++) f32[i] = (rng.next() - 0.5) * 0.05;
  out.push(time(f32, f32.byteLength, 'f32'));
  const half = new Uint16Array(rows * cols);
  k.floatToHalf(f32, half, half.length);
  out.push(time(half, half.byteLength, 'f16'));
  const u32 = new Uint32Array(f32.buffer);
  const bits = new Uint16Array(rows * cols);
  for (let i = 0; i < bits.length; i++) bits[i] = u32[i] >>> 16;
  out.push(time(new Bf16Matrix(bits, rows, cols), bits.byteLength, 'bf16'));
  for (const t of QUANT_TYPES) {
    const f = quantFormat(t);
    const data = new Uint8Array(((rows * cols) / f.blockSize) * f.blockBytes);
    for (let off = 0; off < data.length; off += 1 << 16) randomFillSync(data, off, Math.min(1 << 16, data.length - off));
    out.push(time(new QuantMatrix(t, rows, cols, data), data.length, t));
  }
  return out;
}

// ---------------------------------------------------------------- 4. speed on random blocks

interface Shape {
  name: string;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  ropeTheta: number;
  contexts: number[];
  /** alternating runs of each engine (the better counts) */
  rounds: number;
  dtypes: GgufDtype[];
}

const SHAPES: Record<string, Shape> = {
  '135m': {
    name: 'SmolLM2-135M',
    hidden: 576,
    layers: 30,
    heads: 9,
    kvHeads: 3,
    headDim: 64,
    intermediate: 1536,
    vocab: 49152,
    ropeTheta: 100000,
    contexts: [512, 2048],
    rounds: 2,
    dtypes: ['f32', 'f16', 'bf16', 'q8_0', 'q4_k_m'],
  },
  // Llama-3.2-1B's shapes; its rope scaling (a per-frequency table) is left out: it costs nothing per token
  '1b': {
    name: 'Llama-3.2-1B',
    hidden: 2048,
    layers: 16,
    heads: 32,
    kvHeads: 8,
    headDim: 64,
    intermediate: 8192,
    vocab: 128256,
    ropeTheta: 500000,
    contexts: [512, 2048],
    rounds: 1,
    dtypes: ['bf16', 'q8_0', 'q4_k_m'],
  },
};

const u32 = (value: number): GgufKv => ({ type: GgufType.UINT32, value });
const f32kv = (value: number): GgufKv => ({ type: GgufType.FLOAT32, value });

/**
 * A GGUF of `shape` whose matrices are random blocks of the types llama-quantize gives `dtype` (scales fixed
 * small, levels random: speed does not depend on the values), norms 1, and a SentencePiece-style vocabulary of
 * placeholder tokens. Written without any float32 copy of the model.
 */
function randomBlockGguf(file: string, shape: Shape, dtype: GgufDtype): void {
  const md = new Map<string, GgufKv>();
  const str = (value: string): GgufKv => ({ type: GgufType.STRING, value });
  md.set('general.architecture', str('llama'));
  md.set('general.name', str(`${shape.name} shapes, random ${dtype} blocks`));
  md.set('general.alignment', u32(32));
  md.set('llama.vocab_size', u32(shape.vocab));
  md.set('llama.context_length', u32(8192));
  md.set('llama.embedding_length', u32(shape.hidden));
  md.set('llama.block_count', u32(shape.layers));
  md.set('llama.feed_forward_length', u32(shape.intermediate));
  md.set('llama.attention.head_count', u32(shape.heads));
  md.set('llama.attention.head_count_kv', u32(shape.kvHeads));
  md.set('llama.rope.freq_base', f32kv(shape.ropeTheta));
  md.set('llama.rope.dimension_count', u32(shape.headDim));
  md.set('llama.attention.layer_norm_rms_epsilon', f32kv(1e-5));
  const tokens = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`)];
  while (tokens.length < shape.vocab) tokens.push(`\u2581t${tokens.length}`);
  const types = tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
  md.set('tokenizer.ggml.model', str('llama'));
  md.set('tokenizer.ggml.tokens', { type: GgufType.ARRAY, arrayType: GgufType.STRING, value: tokens });
  md.set('tokenizer.ggml.scores', { type: GgufType.ARRAY, arrayType: GgufType.FLOAT32, value: tokens.map((_, i) => -i) });
  md.set('tokenizer.ggml.token_type', { type: GgufType.ARRAY, arrayType: GgufType.INT32, value: types });
  md.set('tokenizer.ggml.bos_token_id', u32(1));
  md.set('tokenizer.ggml.eos_token_id', u32(2));
  const tensors: GgufTensorToWrite[] = [];
  const rng = new Rng(3);
  const ones = (n: number) => new Float32Array(n).fill(1);
  const mat = (name: string, rows: number, cols: number, role: 'output' | 'attn_v' | 'ffn_down' | 'other', layer = 0) => {
    const type = matrixType(dtype, role, layer, shape.layers, cols);
    const f = quantFormatOfGgml(type);
    if (type === GgmlType.BF16) {
      // random bf16 bits of magnitude 2^-7 .. 2^-6, written as they are
      const data = new Uint8Array(rows * cols * 2);
      for (let off = 0; off < data.length; off += 1 << 16) randomFillSync(data, off, Math.min(1 << 16, data.length - off));
      for (let i = 1; i < data.length; i += 2) data[i] = (data[i] & 0x80) | 0x3c;
      tensors.push({ name, shape: [rows, cols], data, type });
      return;
    }
    if (!f) {
      const data = Float32Array.from({ length: rows * cols }, () => (rng.next() - 0.5) * 0.04);
      tensors.push({ name, shape: [rows, cols], data, type });
      return;
    }
    const data = new Uint8Array((rows * cols * f.blockBytes) / f.blockSize);
    for (let off = 0; off < data.length; off += 1 << 16) randomFillSync(data, off, Math.min(1 << 16, data.length - off));
    // scale halves 2^-12 (d, and dmin of the K types): weights of a few hundredths
    const halves = f.type === 'q6_k' ? [208] : f.type.endsWith('_1') || f.type.endsWith('_k') ? [0, 2] : [0];
    for (let b = 0; b < data.length; b += f.blockBytes)
      for (const o of halves) {
        data[b + o] = 0x00;
        data[b + o + 1] = 0x0c;
      }
    tensors.push({ name, shape: [rows, cols], data, type });
  };
  const { hidden: h, heads: H, kvHeads: Hkv, headDim: d, intermediate: I, vocab: V } = shape;
  mat('token_embd.weight', V, h, 'output');
  for (let l = 0; l < shape.layers; l++) {
    const p = `blk.${l}.`;
    tensors.push({ name: p + 'attn_norm.weight', shape: [h], data: ones(h), type: GgmlType.F32 });
    mat(p + 'attn_q.weight', H * d, h, 'other', l);
    mat(p + 'attn_k.weight', Hkv * d, h, 'other', l);
    mat(p + 'attn_v.weight', Hkv * d, h, 'attn_v', l);
    mat(p + 'attn_output.weight', h, H * d, 'other', l);
    tensors.push({ name: p + 'ffn_norm.weight', shape: [h], data: ones(h), type: GgmlType.F32 });
    mat(p + 'ffn_gate.weight', I, h, 'other', l);
    mat(p + 'ffn_up.weight', I, h, 'other', l);
    mat(p + 'ffn_down.weight', h, I, 'ffn_down', l);
  }
  tensors.push({ name: 'output_norm.weight', shape: [h], data: ones(h), type: GgmlType.F32 });
  writeGgufFile(file, md, tensors);
}

interface EngineRun {
  prefillTokPerS: number;
  decodeTokPerS: number;
  peakRssMb: number;
  loadSeconds: number;
  /** one decode step's milliseconds by section (a profiled pass after the timed one) */
  decodeSplitMs: { linear: number; attention: number; other: number };
  /** the prefill's milliseconds by section (a second, profiled prefill of the same tokens) */
  prefillSplitMs: { linear: number; attention: number; other: number };
}

/** kvevict alone in a child process (its peak RSS is its own): load, warm up, prefill `context` tokens, decode. */
function engineInChild(file: string, context: number, decodeSteps: number, weights: WeightFormat): EngineRun {
  const r = spawnSync(process.execPath, [join(here, 'formats.js'), '--engine', file, String(context), String(decodeSteps), weights], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`engine run on ${file} failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as EngineRun;
}

async function engineMain(file: string, context: number, decodeSteps: number, weights: WeightFormat): Promise<void> {
  const t0 = performance.now();
  const m = loadModelDir(file);
  const loadSeconds = (performance.now() - t0) / 1000;
  const model = new LlamaModel(m.config, m.weights, undefined, { weights });
  const rng = new Rng(2);
  const tokens = Int32Array.from({ length: context + decodeSteps }, () => 300 + rng.int(m.config.vocabSize - 300));
  const positions = Int32Array.from(tokens, (_, i) => i);
  // warm up: code paths, scratch buffers, the weights' pages, the thread pool
  model.forward({ tokens: tokens.subarray(0, 64), positions: positions.subarray(0, 64), cache: model.newCache('f16') });
  const cache = model.newCache('f16');
  const t1 = performance.now();
  model.forward({ tokens: tokens.subarray(0, context), positions: positions.subarray(0, context), cache });
  const prefillMs = performance.now() - t1;
  const logits = new Float32Array(m.config.vocabSize);
  const t2 = performance.now();
  for (let i = 0; i < decodeSteps; i++) {
    model.forward({
      tokens: tokens.subarray(context + i, context + i + 1),
      positions: positions.subarray(context + i, context + i + 1),
      cache,
      logitsOut: logits,
    });
  }
  const decodeMs = performance.now() - t2;
  // where a decode step's time goes: a few more steps with every kernel call timed (after the timed ones)
  const profile = new ForwardProfile();
  model.profile = profile;
  const profiled = 4;
  const t3 = performance.now();
  for (let i = 0; i < profiled; i++) {
    const at = context + decodeSteps - profiled + i;
    model.forward({ tokens: tokens.subarray(at, at + 1), positions: Int32Array.of(context + decodeSteps + i), cache, logitsOut: logits });
  }
  const stepMs = (performance.now() - t3) / profiled;
  const decodeProfile = { linear: profile.linearMs / profiled, attention: profile.attentionMs / profiled };
  profile.reset();
  const t4 = performance.now();
  model.forward({ tokens: tokens.subarray(0, context), positions: positions.subarray(0, context), cache: model.newCache('f16') });
  const profiledPrefillMs = performance.now() - t4;
  model.profile = null;
  const run: EngineRun = {
    decodeSplitMs: { ...decodeProfile, other: stepMs - decodeProfile.linear - decodeProfile.attention },
    prefillSplitMs: {
      linear: profile.linearMs,
      attention: profile.attentionMs,
      other: profiledPrefillMs - profile.linearMs - profile.attentionMs,
    },
    prefillTokPerS: (context / prefillMs) * 1000,
    decodeTokPerS: (decodeSteps / decodeMs) * 1000,
    peakRssMb: peakRssBytes() / 2 ** 20,
    loadSeconds,
  };
  process.stdout.write(JSON.stringify(run) + '\n');
}

interface SpeedRow {
  shape: string;
  dtype: GgufDtype;
  fileMb: number;
  context: number;
  prefillTokPerS: number;
  llamaCppPrefillTokPerS: number;
  prefillRatio: number;
  decodeTokPerS: number;
  llamaCppDecodeTokPerS: number;
  decodeRatio: number;
  peakRssMb: number;
  rssOverFile: number;
  /** kvevict's time by section, from its last run's profiled passes (the prefill: the whole prompt; decode: one step) */
  prefillSplitMs: EngineRun['prefillSplitMs'];
  decodeSplitMs: EngineRun['decodeSplitMs'];
}

const DECODE_STEPS = 32;

async function speed(dir: string, shapes: string[], contexts?: number[], dtypes?: string[]): Promise<SpeedRow[]> {
  const out: SpeedRow[] = [];
  for (const key of shapes) {
    const shape = SHAPES[key];
    const rounds = shape.rounds;
    for (const dtype of shape.dtypes.filter((d) => !dtypes || dtypes.includes(d))) {
      const file = join(dir, `${key}-${dtype}.gguf`);
      randomBlockGguf(file, shape, dtype);
      const fileMb = statSync(file).size / 2 ** 20;
      for (const context of contexts ?? shape.contexts) {
        // the better of `rounds` alternating runs of each engine
        let ours: EngineRun | null = null;
        let theirs: { prefillTokPerS: number; decodeTokPerS: number } | null = null;
        for (let r = 0; r < rounds; r++) {
          // an F16 file loads as float32; its halves are kept with weights 'f16' (like against like)
          const e = engineInChild(file, context, DECODE_STEPS, dtype === 'f16' ? 'f16' : 'auto');
          ours = ours
            ? {
                ...e,
                prefillTokPerS: Math.max(ours.prefillTokPerS, e.prefillTokPerS),
                decodeTokPerS: Math.max(ours.decodeTokPerS, e.decodeTokPerS),
              }
            : e;
          const two = await llamaCppBench(file, { promptTokens: context, decodeTokens: DECODE_STEPS, threads: 2 });
          theirs = theirs
            ? {
                prefillTokPerS: Math.max(theirs.prefillTokPerS, two.prefillTokPerS),
                decodeTokPerS: Math.max(theirs.decodeTokPerS, two.decodeTokPerS),
              }
            : two;
        }
        const row: SpeedRow = {
          shape: shape.name,
          dtype,
          fileMb,
          context,
          prefillTokPerS: ours!.prefillTokPerS,
          llamaCppPrefillTokPerS: theirs!.prefillTokPerS,
          prefillRatio: ours!.prefillTokPerS / theirs!.prefillTokPerS,
          decodeTokPerS: ours!.decodeTokPerS,
          llamaCppDecodeTokPerS: theirs!.decodeTokPerS,
          decodeRatio: ours!.decodeTokPerS / theirs!.decodeTokPerS,
          peakRssMb: ours!.peakRssMb,
          rssOverFile: ours!.peakRssMb / fileMb,
          prefillSplitMs: ours!.prefillSplitMs,
          decodeSplitMs: ours!.decodeSplitMs,
        };
        out.push(row);
        process.stderr.write(
          `  ${shape.name} ${dtype} at ${context}: prefill ${row.prefillTokPerS.toFixed(1)} vs ${row.llamaCppPrefillTokPerS.toFixed(1)} tok/s, decode ${row.decodeTokPerS.toFixed(1)} vs ${row.llamaCppDecodeTokPerS.toFixed(1)}, RSS ${row.peakRssMb.toFixed(0)} MB (file ${fileMb.toFixed(0)} MB)\n`,
        );
      }
      rmSync(file, { force: true });
    }
  }
  return out;
}

export async function runBench(
  opts: { speed?: boolean; shapes?: string[]; contexts?: number[]; dtypes?: string[]; correctness?: boolean } = {},
): Promise<object> {
  if (!(await ensureYardstick())) throw new Error('node-llama-cpp could not be installed in bench/yardstick');
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-formats-'));
  try {
    const check = opts.correctness !== false;
    const quantizers = check ? compareQuantizers(dir) : 'not run (--speed-only)';
    if (typeof quantizers === 'string') process.stdout.write(`quantizers against llama.cpp: not measured (${quantizers})\n`);
    else
      process.stdout.write(
        formatTable(
          "the writer's quantizers against llama.cpp's quantize_row_*_ref (16 rows of 1,024 weights)",
          ['type', 'bytes', 'bytes that differ'],
          quantizers.map((q) => [q.type, q.bytes, q.differing]),
        ),
      );
    const stories = check ? await storiesEveryDtype(dir) : [];
    if (check)
      process.stdout.write(
        formatTable(
          'stories260K converted to each dtype: greedy tokens of "Once upon a time", kvevict against llama.cpp on the same file',
          ['dtype', 'file KB', 'agreeing', 'of'],
          stories.map((s) => [s.dtype, s.fileBytes / 1024, s.agreeing, s.steps]),
        ),
      );
    let speedRows: SpeedRow[] = [];
    let productRows: ProductRow[] = [];
    let fmaPeakGflops: number | null = null;
    let readPeakGbps: { twoThreads: number; oneThread: number } | null = null;
    if (opts.speed !== false) {
      const addon = loadNative() ? loadNativeAddon(nativeAddonPath) : null;
      fmaPeakGflops = addon?.fmaPeak ? addon.fmaPeak(2) : null;
      readPeakGbps = addon?.readPeak ? { twoThreads: addon.readPeak(2, 1024), oneThread: addon.readPeak(1, 1024) } : null;
      productRows = products();
      const ceiling = readPeakGbps?.twoThreads ?? NaN;
      process.stdout.write(
        formatTable(
          `one decode product, 131,072 x 2,048, native kernels on 2 threads, best of 20; measured now: the FMA peak ${fmaPeakGflops?.toFixed(0) ?? '-'} GFLOP/s on two threads, a plain read of 1 GB (a floor of the memory's rate) ${readPeakGbps?.twoThreads.toFixed(1) ?? '-'} GB/s on two (${readPeakGbps?.oneThread.toFixed(1) ?? '-'} on one)`,
          ['format', 'MB', 'ms', 'GB/s', 'over the plain read', 'G weights/s'],
          productRows.map((r) => [r.format, r.mb, r.ms, r.gbPerS, r.gbPerS / ceiling, r.gWeightsPerS]),
        ),
      );
      speedRows = await speed(dir, opts.shapes ?? ['135m', '1b'], opts.contexts, opts.dtypes);
      process.stdout.write(
        formatTable(
          `random blocks in llama-quantize's layout, 2 threads, decode ${DECODE_STEPS} tokens after the prompt; better of 2 alternating runs each (1B: one each)`,
          [
            'shape',
            'dtype',
            'file MB',
            'context',
            'prefill tok/s',
            'llama.cpp',
            'ratio',
            'decode tok/s',
            'llama.cpp',
            'ratio',
            'peak RSS MB',
            'RSS/file',
          ],
          speedRows.map((r) => [
            r.shape,
            r.dtype,
            r.fileMb,
            r.context,
            r.prefillTokPerS,
            r.llamaCppPrefillTokPerS,
            r.prefillRatio,
            r.decodeTokPerS,
            r.llamaCppDecodeTokPerS,
            r.decodeRatio,
            r.peakRssMb,
            r.rssOverFile,
          ]),
        ),
      );
      const pct = (part: number, split: EngineRun['prefillSplitMs']) => (100 * part) / (split.linear + split.attention + split.other);
      process.stdout.write(
        formatTable(
          "where kvevict's time goes (percent, profiled passes after the timed ones)",
          ['shape', 'dtype', 'context', 'prefill linear', 'attention', 'other', 'decode linear', 'attention', 'other'],
          speedRows.map((r) => [
            r.shape,
            r.dtype,
            r.context,
            pct(r.prefillSplitMs.linear, r.prefillSplitMs),
            pct(r.prefillSplitMs.attention, r.prefillSplitMs),
            pct(r.prefillSplitMs.other, r.prefillSplitMs),
            pct(r.decodeSplitMs.linear, r.decodeSplitMs),
            pct(r.decodeSplitMs.attention, r.decodeSplitMs),
            pct(r.decodeSplitMs.other, r.decodeSplitMs),
          ]),
        ),
      );
    }
    return { quantizers, stories, products: productRows, fmaPeakGflops, readPeakGbps, speed: speedRows };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
if (process.argv[1]?.endsWith('formats.js') && process.argv[1].includes('bench')) {
  if (argv[0] === '--write') randomBlockGguf(argv[3], SHAPES[argv[1]], argv[2] as GgufDtype);
  else if (argv[0] === '--engine') await engineMain(argv[1], Number(argv[2]), Number(argv[3]), (argv[4] ?? 'auto') as WeightFormat);
  else {
    const list = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1].split(',') : undefined);
    await runAndRecord('formats', () =>
      runBench({
        speed: !argv.includes('--no-speed'),
        correctness: !argv.includes('--speed-only'),
        shapes: list('--shapes'),
        contexts: list('--contexts')?.map(Number),
        dtypes: list('--dtypes'),
      }),
    );
  }
}
