import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QUANT_TYPES, QuantMatrix, quantFormat, type QuantType } from '../src/quant/formats.js';
import { dequantizeRows } from '../src/quant/blocks.js';
import { quantizeMatrix } from '../src/quant/quantize.js';
import { jsKernels } from '../src/kernels/js.js';
import { GgmlType, matrixType, readGguf, writeGguf, writeGgufFile, ggufContent } from '../src/model/gguf.js';
import { loadModelDir } from '../src/model/load.js';
import { LlamaModel } from '../src/model/llama.js';
import { floatWeights } from '../src/model/weights.js';
import { Rng } from '../src/util/rng.js';
import { blockWeight64, half64 } from './reference/ggml-blocks.js';
import { referenceForward } from './reference/llama-f64.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { cli } from './helpers/cli.js';
import { kernelPairs } from './helpers/kernel-pairs.js';

const root = mkdtempSync(join(tmpdir(), 'kvevict-quant-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const both = kernelPairs();

/** Random blocks whose half scales are finite and moderate (every other byte random). */
function randomBlocks(type: QuantType, blocks: number, seed: number): Uint8Array {
  const f = quantFormat(type);
  const rng = new Rng(seed);
  const b = new Uint8Array(blocks * f.blockBytes);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rng.next() * 256);
  // the scale halves: small positive or negative values (exponent 5..14)
  const halves = type === 'q6_k' ? [208] : type.endsWith('_1') || type.endsWith('_k') ? [0, 2] : [0];
  for (let blk = 0; blk < blocks; blk++)
    for (const o of halves) {
      const at = blk * f.blockBytes + o;
      const exp = 5 + Math.floor(rng.next() * 10);
      const bits = (rng.next() < 0.5 ? 0x8000 : 0) | (exp << 10) | Math.floor(rng.next() * 1024);
      b[at] = bits & 255;
      b[at + 1] = bits >> 8;
    }
  return b;
}

test('every block format dequantizes as an independent float64 decoder of the ggml layouts says (TypeScript and native)', () => {
  for (const type of QUANT_TYPES) {
    const f = quantFormat(type);
    const rows = 3,
      cols = f.blockSize * 4;
    const data = randomBlocks(type, rows * 4, 11);
    const m = new QuantMatrix(type, rows, cols, data);
    for (const [name, k] of both) {
      const out = new Float32Array(rows * cols).fill(NaN);
      k.dequantRows(m, 0, rows, out);
      const tail = new Float32Array(cols);
      k.dequantRows(m, 2, 1, tail);
      for (let i = 0; i < rows * cols; i++) {
        const want = blockWeight64(type, data, Math.floor(i / f.blockSize) * f.blockBytes, i % f.blockSize);
        // two float32 roundings (the scale product, then the level product and offset)
        if (!(Math.abs(out[i] - want) <= 4e-7 * (Math.abs(want) + 1e-3)))
          assert.fail(`${name} ${type} weight ${i}: ${out[i]}, expected ${want}`);
      }
      assert.deepEqual(tail, out.subarray(2 * cols), `${name} ${type}: one row from the middle`);
    }
  }
  assert.equal(half64(0x3c00), 1);
  assert.equal(half64(0xc000), -2);
});

/** Normal weights with a few outliers, as trained matrices have. */
function weights(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * 0.05 * (rng.next() < 0.01 ? 8 : 1));
}

test("quantize then dequantize: each format's error stays within its bound, and its RMS error is what the format can do", () => {
  // RMS error relative to the weights' RMS: measured 2026-12-01 on these weights (q4_0 0.137, q4_k 0.091, q6_k 0.026, q8_0 0.009), plus 15%
  const rms: Record<QuantType, number> = {
    q8_0: 0.0105,
    q6_k: 0.03,
    q5_0: 0.08,
    q5_1: 0.056,
    q5_k: 0.053,
    q4_0: 0.16,
    q4_1: 0.11,
    q4_k: 0.105,
  };
  for (const type of QUANT_TYPES) {
    const f = quantFormat(type);
    const rows = 8,
      cols = 1024;
    const w = weights(rows * cols, 3);
    const m = quantizeMatrix(type, w, rows, cols);
    const back = new Float32Array(w.length);
    dequantizeRows(m, 0, rows, back);
    let se = 0,
      sw = 0;
    for (let b = 0; b < w.length / f.blockSize; b++) {
      let amax = 0;
      for (let i = b * f.blockSize; i < (b + 1) * f.blockSize; i++) amax = Math.max(amax, Math.abs(w[i]));
      for (let i = b * f.blockSize; i < (b + 1) * f.blockSize; i++) {
        const e = Math.abs(back[i] - w[i]);
        if (e > f.relativeBound * amax * 1.01)
          assert.fail(`${type} weight ${i}: error ${e} over ${f.relativeBound} of the block's ${amax}`);
        se += e * e;
        sw += w[i] * w[i];
      }
    }
    const rel = Math.sqrt(se / sw);
    assert.ok(rel < rms[type], `${type}: RMS error ${rel.toFixed(4)} of the weights' RMS (limit ${rms[type]})`);
    assert.ok(rel > rms[type] / 20, `${type}: RMS error ${rel.toFixed(5)} is implausibly small (is it quantizing?)`);
  }
});

/**
 * A dequantized row against activations in float64: the exact product, the most that rounding the activations to
 * their blocks' 8-bit grids can move it, and the sum of the terms' magnitudes (the float32 rounding's scale).
 */
function rowAgainstFloat64(w: Float32Array, x: ArrayLike<number>): { exact: number; bound: number; scale: number } {
  let exact = 0,
    bound = 0,
    scale = 0;
  for (let j = 0; j < w.length; j++) {
    exact += w[j] * x[j];
    scale += Math.abs(w[j] * x[j]);
    let amax = 0;
    for (let i = j - (j % 32); i < j - (j % 32) + 32; i++) amax = Math.max(amax, Math.abs(x[i]));
    // rounding an activation to its block's 8-bit grid moves it at most half a step (amax / 127 / 2)
    bound += Math.abs(w[j]) * (amax / 254);
  }
  return { exact, bound, scale };
}

test('quantized matrix-vector products: native and TypeScript agree, and both are within the 8-bit activations bound of float64', () => {
  const rng = new Rng(5);
  // an odd count of blocks (the wide rows' tails) and activations from ordinary to far below float32's normal range
  const cases = QUANT_TYPES.flatMap((type) =>
    [
      { cols: 512, scale: 1 },
      { cols: quantFormat(type).blockSize === 32 ? 544 : 768, scale: 1 },
      { cols: 512, scale: 1e-41 },
    ].map((c) => ({ type, ...c })),
  );
  for (const { type, cols, scale: xScale } of cases) {
    const rows = 21;
    const m = quantizeMatrix(type, weights(rows * cols, 7), rows, cols);
    const deq = new Float32Array(rows * cols);
    dequantizeRows(m, 0, rows, deq);
    const x = Float32Array.from({ length: cols }, () => rng.normal() * (rng.next() < 0.02 ? 10 : 1) * xScale);
    const before = Float32Array.from({ length: rows + 3 }, () => rng.normal());
    for (const accumulate of [false, true]) {
      const outs = both.map(([name, k]) => {
        const y = Float32Array.from(before);
        k.sgemv(rows, cols, m, x, y, accumulate);
        for (let r = rows; r < y.length; r++) assert.equal(y[r], before[r], `${name} ${type} wrote past n`);
        return [name, y] as const;
      });
      for (let r = 0; r < rows; r++) {
        const { exact, bound, scale } = rowAgainstFloat64(deq.subarray(r * cols, (r + 1) * cols), x);
        const want = (accumulate ? before[r] : 0) + exact;
        // absolute slack at the activations' own scale: tiny ones may be flushed to zero, never turned into NaN
        const slack = 1e-6 * (accumulate ? 1 : Math.max(xScale, 1e-30));
        for (const [name, y] of outs) {
          if (!(Math.abs(y[r] - want) <= bound * 1.001 + 1e-5 * scale + slack))
            assert.fail(`${name} ${type} row ${r}: ${y[r]}, float64 ${want}, bound ${bound}`);
        }
        if (outs.length === 2) {
          const d = Math.abs(outs[0][1][r] - outs[1][1][r]);
          assert.ok(d <= 2e-6 * scale + slack, `${type} row ${r}: native ${outs[1][1][r]} vs TypeScript ${outs[0][1][r]}`);
        }
      }
    }
  }
});

test('the integer prefill product: every block type within the 8-bit activations bound of float64, row for row as the decode product', (t) => {
  const native = both.find(([name]) => name === 'native')?.[1];
  assert.equal(
    jsKernels.quantGemm(1, new Float32Array(32), quantizeMatrix('q8_0', new Float32Array(32), 1, 32), new Float32Array(1), 1, false),
    false,
  );
  if (!native) return t.skip('native kernels not built');
  const probe = quantizeMatrix('q8_0', weights(32, 1), 1, 32);
  if (!native.quantGemm(1, new Float32Array(32), probe, new Float32Array(1), 1, false))
    return t.skip('built without AVX2 or AVX-512 VNNI: prefills widen the blocks');
  const rng = new Rng(12);
  // rows and columns off the 12 x 16 tiles; an odd count of blocks; a wider y (ldy) whose other columns must survive
  const cases = QUANT_TYPES.flatMap((type) =>
    [
      { rows: 13, n: 21, cols: 512, scale: 1 },
      { rows: 25, n: 37, cols: quantFormat(type).blockSize === 32 ? 544 : 768, scale: 1 },
      { rows: 12, n: 16, cols: 256, scale: 1e-41 },
      // every level at its top and every activation at 127: the largest integer sums a group can make
      { rows: 5, n: 9, cols: 512, scale: 1, extreme: true },
    ].map((c) => ({ type, ...c })),
  );
  for (const { type, rows, n, cols, scale: xScale, extreme } of cases) {
    const w = extreme ? Float32Array.from({ length: n * cols }, (_, i) => (i % 16 === 0 ? -1 : 1)) : weights(n * cols, 8);
    const m = quantizeMatrix(type, w, n, cols);
    const deq = new Float32Array(n * cols);
    dequantizeRows(m, 0, n, deq);
    const x = extreme
      ? new Float32Array(rows * cols).fill(1)
      : Float32Array.from({ length: rows * cols }, () => rng.normal() * (rng.next() < 0.02 ? 10 : 1) * xScale);
    const ldy = n + 3;
    const before = Float32Array.from({ length: rows * ldy + 5 }, () => rng.normal());
    for (const accumulate of [false, true]) {
      const y = Float32Array.from(before);
      assert.ok(native.quantGemm(rows, x, m, y, ldy, accumulate), `${type}: integer product`);
      for (let i = 0; i < y.length; i++)
        if (i >= rows * ldy || i % ldy >= n) assert.equal(y[i], before[i], `${type} wrote outside its rows and columns (${i})`);
      for (let i = 0; i < rows; i++) {
        const xi = x.subarray(i * cols, (i + 1) * cols);
        const decode = Float32Array.from(before.subarray(i * ldy, i * ldy + n));
        native.sgemv(n, cols, m, xi, decode, accumulate);
        for (let r = 0; r < n; r++) {
          const { exact, bound, scale } = rowAgainstFloat64(deq.subarray(r * cols, (r + 1) * cols), xi);
          const got = y[i * ldy + r],
            base = accumulate ? before[i * ldy + r] : 0;
          const slack = 1e-6 * (accumulate ? 1 : Math.max(xScale, 1e-30));
          if (!(Math.abs(got - base - exact) <= bound * 1.001 + 1e-5 * scale + slack))
            assert.fail(`${type} ${rows}x${n}x${cols} y[${i}, ${r}]: ${got}, float64 ${base + exact}, bound ${bound}`);
          // the same quantized activations as a decode row's: only the float sums' order differs
          if (!(Math.abs(got - decode[r]) <= 2e-6 * scale + slack))
            assert.fail(`${type} y[${i}, ${r}]: ${got}, the decode product ${decode[r]}`);
        }
      }
    }
  }
});

test('a fused product mixes block types and float32 parts (a Q4_K_M layer: Q4_K q and k, Q6_K v)', () => {
  const rng = new Rng(9);
  const k = 256;
  const x = Float32Array.from({ length: k }, () => rng.normal());
  const q = quantizeMatrix('q4_k', weights(8 * k, 1), 8, k);
  const v = quantizeMatrix('q6_k', weights(4 * k, 2), 4, k);
  const f = weights(5 * k, 3);
  for (const [name, kern] of both) {
    const parts = [
      { w: q, n: 8, y: new Float32Array(8) },
      { w: f, n: 5, y: new Float32Array(5) },
      { w: v, n: 4, y: new Float32Array(4) },
    ];
    kern.sgemvParts(k, x, parts);
    for (const p of parts) {
      const alone = new Float32Array(p.n);
      jsKernels.sgemv(p.n, k, p.w, x, alone);
      for (let r = 0; r < p.n; r++)
        assert.ok(Math.abs(p.y[r] - alone[r]) <= 1e-4, `${name} part ${p.n}x${k} row ${r}: ${p.y[r]} vs ${alone[r]}`);
    }
  }
});

test("Q4_K_M's choice of types follows llama-quantize (use_more_bits, the output matrix, fallbacks for short rows)", () => {
  // 8 layers: use_more_bits picks 0 (first eighth), 7 (last eighth), and 3, 6 ((i - 1) % 3 == 2)
  const v = Array.from({ length: 8 }, (_, l) => matrixType('q4_k_m', 'attn_v', l, 8, 2048));
  assert.deepEqual(
    v.map((t) => (t === GgmlType.Q6_K ? 6 : 4)),
    [6, 4, 4, 6, 4, 4, 6, 6],
  );
  assert.equal(matrixType('q4_k_m', 'other', 3, 8, 2048), GgmlType.Q4_K);
  assert.equal(matrixType('q4_k_m', 'output', 0, 8, 2048), GgmlType.Q6_K);
  assert.equal(matrixType('q4_0', 'output', 0, 8, 2048), GgmlType.Q6_K);
  assert.equal(matrixType('q8_0', 'output', 0, 8, 2048), GgmlType.Q8_0);
  assert.equal(matrixType('q4_k_m', 'output', 0, 8, 576), GgmlType.Q8_0);
  assert.equal(matrixType('q4_k', 'other', 0, 8, 576), GgmlType.Q5_0);
  assert.equal(matrixType('q5_k', 'other', 0, 8, 576), GgmlType.Q5_1);
  assert.equal(matrixType('q6_k', 'other', 0, 8, 576), GgmlType.Q8_0);
  assert.equal(matrixType('q8_0', 'other', 0, 8, 100), GgmlType.F16);
  assert.equal(matrixType('f16', 'output', 0, 8, 2048), GgmlType.F16);
});

/** A random Llama whose rows are whole K-quant blocks (hidden and intermediate multiples of 256). */
function blockModel(name: string, overrides: Record<string, unknown> = {}): string {
  const dir = join(root, name);
  writeRandomModelDir(
    dir,
    tinyRawConfig('llama', {
      hidden_size: 256,
      intermediate_size: 512,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 64,
      num_hidden_layers: 3,
      ...overrides,
    }),
    { tokenizerFrom: 'bytes', scale: 0.05, seed: 4 },
  );
  return dir;
}

test('a quantized GGUF stays quantized in memory and its forward pass matches float64 over its dequantized weights', () => {
  const dir = blockModel('q');
  const src = loadModelDir(dir);
  const tokens = Int32Array.from([257, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100]);
  for (const dtype of ['q4_k_m', 'q8_0', 'q4_0', 'q5_k'] as const) {
    const file = join(root, `q-${dtype}.gguf`);
    writeGguf(file, src.config, src.weights, src.tokenizer, { dtype });
    const m = loadModelDir(file);
    const L0 = m.weights.layers[0];
    assert.ok(L0.q instanceof QuantMatrix && L0.down instanceof QuantMatrix && m.weights.embed instanceof QuantMatrix, dtype);
    if (dtype === 'q4_k_m') {
      // 3 layers: use_more_bits picks layer 2 (the last eighth) and layer 2 ((2 - 0) % 3 == 2)
      assert.deepEqual(
        m.weights.layers.map((l) => (l.v as QuantMatrix).type),
        ['q4_k', 'q4_k', 'q6_k'],
      );
      assert.equal((m.weights.embed as QuantMatrix).type, 'q6_k', 'the tied embedding is the output matrix: Q6_K');
    }
    const bytes = readFileSync(file).length;
    const held = [m.weights.embed, ...m.weights.layers.flatMap((l) => [l.q, l.k, l.v, l.o, l.gate, l.up, l.down])].reduce(
      (a, x) => a + (x instanceof QuantMatrix ? x.data.length : (x as Float32Array).byteLength),
      0,
    );
    assert.ok(held <= bytes && held > bytes * 0.8, `${dtype}: ${held} bytes of matrices held for a ${bytes}-byte file`);
    const ref = referenceForward(m.config, m.weights, { tokens });
    const refLogits = Float64Array.from(ref.logits.flatMap((row) => Array.from(row)));
    const vocab = m.config.vocabSize;
    const close = (got: Float32Array, want: ArrayLike<number>, tol: number, what: string) => {
      let num = 0,
        den = 0;
      for (let i = 0; i < got.length; i++) {
        num += (got[i] - want[i]) ** 2;
        den += want[i] ** 2;
      }
      const rel = Math.sqrt(num / den);
      assert.ok(rel < tol, `${dtype} ${what}: relative L2 error ${rel.toExponential(2)} (limit ${tol})`);
    };
    for (const [name, k] of both) {
      const model = new LlamaModel(m.config, m.weights, k);
      // a prefill multiplies dequantized float32 rows (float32 accuracy), or the blocks in integers with 8-bit
      // activations where the native kernels have that product (their rounding, as decoding)
      const integer = k.quantGemm(
        1,
        new Float32Array(m.config.hiddenSize),
        L0.q as QuantMatrix,
        new Float32Array((L0.q as QuantMatrix).rows),
        (L0.q as QuantMatrix).rows,
        false,
      );
      const cache = model.newCache();
      const all = model.forward({ tokens, positions: Int32Array.from(tokens, (_, i) => i), cache, logits: 'all' });
      close(all, refLogits, integer ? 0.03 : 1e-4, `${name} prefill`);
      // decoding reads the blocks with 8-bit activations: their rounding, no more
      const dec = model.newCache();
      for (let t = 0; t < tokens.length; t++) {
        const out = model.forward({ tokens: tokens.subarray(t, t + 1), positions: Int32Array.of(t), cache: dec });
        close(out, refLogits.subarray(t * vocab, (t + 1) * vocab), 0.03, `${name} decode step ${t}`);
      }
    }
  }
});

test('a converted quantized file converts back: f32 from Q8_0 holds the dequantized values', () => {
  const dir = blockModel('rt');
  const src = loadModelDir(dir);
  const q = join(root, 'rt-q8_0.gguf'),
    back = join(root, 'rt-f32.gguf');
  writeGguf(q, src.config, src.weights, src.tokenizer, { dtype: 'q8_0' });
  const m = loadModelDir(q);
  writeGguf(back, m.config, m.weights, m.tokenizer, { dtype: 'f32' });
  const f = loadModelDir(back);
  assert.deepEqual(floatWeights(f.weights).layers[1].gate, floatWeights(m.weights).layers[1].gate);
  assert.deepEqual(
    floatWeights(f.weights).layers[0].q,
    floatWeights(m.weights).layers[0].q,
    'q rows (permuted for llama.cpp) come back in place',
  );
});

test('bad quantized tensors are refused in one line naming the file, the tensor and the type (exit 2 from the CLI)', () => {
  const dir = blockModel('bad');
  const src = loadModelDir(dir);
  const { metadata, tensors } = ggufContent(src.config, src.weights, src.tokenizer, { dtype: 'q8_0' });
  const cases: [string, (ts: typeof tensors) => void, RegExp][] = [
    [
      'an unsupported type',
      (ts) => (ts.find((t) => t.name === 'blk.0.attn_q.weight')!.type = 11 as GgmlType),
      /tensor blk\.0\.attn_q\.weight has ggml type Q3_K \(11\); supported: .*Q4_K \(12\)/,
    ],
    [
      'rows that are not whole blocks',
      (ts) => {
        const t = ts.find((x) => x.name === 'blk.1.ffn_up.weight')!;
        t.type = GgmlType.Q4_K;
        t.shape = [2, 288];
      },
      /blk\.1\.ffn_up\.weight is Q4_K \(12\) with rows of 288 values, not whole blocks of 256/,
    ],
    [
      'a 1-D quantized tensor',
      (ts) => {
        const t = ts.find((x) => x.name === 'output_norm.weight')!;
        t.type = GgmlType.Q8_0;
        t.data = new Uint8Array((t.data.length / 32) * 34);
      },
      /output_norm\.weight is 1-D in Q8_0 \(8\)/,
    ],
  ];
  for (const [what, mutate, want] of cases) {
    const ts = tensors.map((t) => ({ ...t }));
    mutate(ts);
    const file = join(root, `bad-${what.replace(/\W+/g, '-')}.gguf`);
    writeGgufFile(file, metadata, ts);
    const r = cli(['generate', '--model', file, '--prompt', 'hi', '--max-new-tokens', '1']);
    assert.equal(r.status, 2, `${what}: exit ${r.status}\n${r.stderr}`);
    assert.match(r.stderr, want, what);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line\n${r.stderr}`);
  }
  // data cut short: the last tensor's blocks end past the end of the file
  const file = join(root, 'bad-cut.gguf');
  writeGgufFile(file, metadata, tensors);
  const bytes = readFileSync(file);
  writeFileSync(file, bytes.subarray(0, bytes.length - 100));
  assert.throws(() => readGguf(file), /truncated: tensor .* ends at byte/);
});

test('the native kernels flush denormals only while they run: JavaScript keeps its own after every kind of call', () => {
  const rng = new Rng(11);
  const m = quantizeMatrix('q4_k', weights(64 * 256, 4), 64, 256);
  const x = Float32Array.from({ length: 256 }, () => rng.normal() * 1e-40);
  const tiny = Number.MIN_VALUE; // 5e-324, a double denormal
  for (const [name, k] of both) {
    k.sgemv(64, 256, m, x, new Float32Array(64)); // one thread
    k.sgemv(64, 256, weights(64 * 256, 5), x, new Float32Array(64));
    const big = quantizeMatrix('q8_0', weights(4096 * 256, 6), 4096, 256);
    k.sgemv(4096, 256, big, x, new Float32Array(4096)); // on the pool
    assert.ok(tiny * 3 > tiny && tiny / 2 === 0 && 1e-310 * 0.5 !== 0, `${name}: JavaScript lost its denormals`);
    assert.equal(Math.fround(1e-40), 9.99994610111476e-41, `${name}: float32 denormals`);
  }
});
