import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bf16Matrix } from '../src/quant/formats.js';
import { jsKernels } from '../src/kernels/js.js';
import { loadModelDir } from '../src/model/load.js';
import { writeGguf } from '../src/model/gguf.js';
import { LlamaModel } from '../src/model/llama.js';
import { LINEAR_NAMES } from '../src/model/weights.js';
import type { FloatWeights } from '../src/model/types.js';
import { Rng } from '../src/util/rng.js';
import { referenceForward } from './reference/llama-f64.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { kernelPairs } from './helpers/kernel-pairs.js';
import type { Kernels } from '../src/kernels/types.js';

const root = mkdtempSync(join(tmpdir(), 'kvevict-bf16-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const both = kernelPairs();

/** Whether these kernels run a bf16 prefill's products on the CPU's bf16 dot product (activations rounded). */
function bf16Dot(k: Kernels): boolean {
  return k.bf16Gemm(1, new Float32Array(2), [{ w: new Bf16Matrix(new Uint16Array(2), 1, 2), y: new Float32Array(1), ldy: 1 }], false);
}

/** bfloat16 rounding by its definition (float64): 8 significant bits, ties to even. */
function roundBf16(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const e = Math.floor(Math.log2(Math.abs(x)));
  const ulp = 2 ** (Math.max(e, -126) - 7);
  const q = Math.abs(x) / ulp;
  let r = Math.floor(q);
  if (q - r > 0.5 || (q - r === 0.5 && r % 2 === 1)) r++;
  return Math.sign(x) * r * ulp;
}

/** The bits of a value that bf16 holds exactly. */
function bf16Bits(v: number): number {
  const f = new Float32Array([v]);
  return new Uint32Array(f.buffer)[0] >>> 16;
}

test('bf16 matrix-vector products (native and TypeScript, fused parts with float32 ones) match float64 over the bf16 values', () => {
  const rng = new Rng(3);
  for (const [rows, cols] of [
    [37, 300],
    [64, 1024],
    [5, 7],
    [3, 48],
    [600, 1000], // past the size that shares rows out between threads
  ]) {
    const vals = Array.from({ length: rows * cols }, () => roundBf16(rng.normal() * 0.1));
    const m = new Bf16Matrix(Uint16Array.from(vals, bf16Bits), rows, cols);
    const x = Float32Array.from({ length: cols }, () => rng.normal());
    const f = Float32Array.from({ length: 3 * cols }, () => rng.normal());
    for (const [name, k] of both) {
      const y = new Float32Array(rows + 2).fill(7);
      const g = new Float32Array(3);
      const accumulate = cols % 2 === 0; // y starts at 7 and is added to, or overwritten
      k.sgemvParts(
        cols,
        x,
        [
          { w: m, n: rows, y },
          { w: f, n: 3, y: g },
        ],
        accumulate,
      );
      for (let r = 0; r < rows; r++) {
        let s = accumulate ? 7 : 0,
          a = accumulate ? 7 : 0;
        for (let j = 0; j < cols; j++) {
          s += vals[r * cols + j] * x[j];
          a += Math.abs(vals[r * cols + j] * x[j]);
        }
        assert.ok(Math.abs(y[r] - s) <= 1e-5 * a + 1e-7, `${name} ${rows}x${cols} row ${r}: ${y[r]} vs ${s}`);
      }
      assert.equal(y[rows], 7, `${name}: wrote past n`);
      const widened = new Float32Array(rows * cols);
      k.bf16ToFloat(m.bits, widened, widened.length);
      assert.deepEqual(Array.from(widened), vals, `${name}: widening is exact`);
    }
  }
});

test('the bf16 prefill product: float64 over the bf16 weights and the bf16-rounded activations, or no product where it does not pay', (t) => {
  const rng = new Rng(8);
  const probe = () => [{ w: new Bf16Matrix(new Uint16Array(2), 1, 2), y: new Float32Array([5]), ldy: 1 }];
  assert.equal(jsKernels.bf16Gemm(1, new Float32Array(2), probe(), false), false);
  const native = both.find(([name]) => name === 'native')?.[1];
  if (!native) return t.skip('native kernels not built');
  const untouched = probe();
  if (!native.bf16Gemm(1, new Float32Array(2), untouched, false)) {
    assert.equal(untouched[0].y[0], 5, 'y untouched where there is no product');
    return t.skip('no AVX512_BF16, or vdpbf16ps not faster than the FMA here: prefills widen bf16 weights');
  }
  // off the 12-row tiles and 32-column strip pairs (a pair's second strip wholly past n); k not a multiple of 32;
  // up to three parts against one x; a wider y (ldy) whose other columns must survive; the bits at an odd 16-bit
  // offset (a file's bytes); activations beyond bf16's precision
  for (const [rows, cols, ns] of [
    [13, 70, [45, 16, 3]],
    [25, 512, [32]],
    [1, 2, [3, 1]],
    [40, 258, [100, 40]],
  ] as [number, number, number[]][]) {
    const x = Float32Array.from({ length: rows * cols }, () => rng.normal() * (rng.next() < 0.02 ? 100 : 1));
    const mats = ns.map((n) => {
      const vals = Array.from({ length: n * cols }, () => roundBf16(rng.normal() * 0.1));
      const store = new Uint16Array(n * cols + 1);
      store.set(Uint16Array.from(vals, bf16Bits), 1);
      const ldy = n + 3;
      return {
        n,
        vals,
        ldy,
        w: new Bf16Matrix(store.subarray(1), n, cols),
        before: Float32Array.from({ length: rows * ldy + 5 }, () => rng.normal()),
      };
    });
    for (const accumulate of [false, true]) {
      const parts = mats.map((m) => ({ w: m.w, y: Float32Array.from(m.before), ldy: m.ldy }));
      assert.ok(native.bf16Gemm(rows, x, parts, accumulate));
      let maxRounded = 0;
      mats.forEach(({ n, vals, ldy, before }, p) => {
        const y = parts[p].y;
        const at = `${rows}x${cols}, part ${p} (${n} rows)`;
        for (let i = 0; i < y.length; i++)
          if (i >= rows * ldy || i % ldy >= n) assert.equal(y[i], before[i], `${at} wrote outside its rows and columns (${i})`);
        for (let i = 0; i < rows; i++)
          for (let r = 0; r < n; r++) {
            let s = accumulate ? before[i * ldy + r] : 0,
              exact = s,
              a = Math.abs(s);
            for (let j = 0; j < cols; j++) {
              const xv = x[i * cols + j];
              s += vals[r * cols + j] * roundBf16(xv);
              exact += vals[r * cols + j] * xv;
              a += Math.abs(vals[r * cols + j] * xv);
            }
            const got = y[i * ldy + r];
            assert.ok(Math.abs(got - s) <= 2e-6 * a + 1e-30, `${at} [${i}, ${r}]: ${got} vs ${s} (float64 over bf16 x)`);
            maxRounded = Math.max(maxRounded, Math.abs(got - exact) / a);
          }
      });
      // the activations' rounding shows (so the reference above is the one that holds), within bf16's 2^-9
      assert.ok(maxRounded > 1e-5 && maxRounded < 2 ** -8, `${rows}x${cols}: error against unrounded x ${maxRounded}`);
    }
  }
  assert.throws(
    () =>
      native.bf16Gemm(
        2,
        new Float32Array(4),
        [...probe(), { w: new Bf16Matrix(new Uint16Array(4), 1, 4), y: new Float32Array(2), ldy: 1 }],
        false,
      ),
    /same number of columns/,
  );
});

test('a BF16 folder stays bf16 in memory and computes as float64 over its values; weights "bf16" rounds a float32 model', () => {
  const dir = join(root, 'bf16');
  const { config, weights } = writeRandomModelDir(dir, tinyRawConfig('llama', { num_hidden_layers: 2 }), {
    dtype: 'BF16',
    seed: 5,
    scale: 0.05,
  });
  const m = loadModelDir(dir);
  for (const n of LINEAR_NAMES) assert.ok(m.weights.layers[1][n] instanceof Bf16Matrix, `${n} kept as bf16`);
  assert.ok(m.weights.embed instanceof Bf16Matrix && m.weights.lmHead === m.weights.embed);
  assert.ok(m.weights.layers[0].inputNorm instanceof Float32Array, 'norms are float32');
  const tokens = Int32Array.from([257, 72, 101, 108, 108, 111, 33, 10, 84, 104]);
  const positions = Int32Array.from(tokens, (_, i) => i);
  const ref = referenceForward(config, m.weights, { tokens });
  const relErr = (got: Float32Array, want: ArrayLike<number>) => {
    let num = 0,
      den = 0;
    for (let i = 0; i < got.length; i++) {
      num += (got[i] - want[i]) ** 2;
      den += want[i] ** 2;
    }
    return Math.sqrt(num / den);
  };
  // where the CPU's bf16 dot product runs the prefill, its products see the activations rounded to bf16
  const refDot = referenceForward(config, m.weights, { tokens, linearInput: (x) => x.map(roundBf16) });
  for (const [name, k] of both) {
    const model = new LlamaModel(m.config, m.weights, k);
    const all = model.forward({ tokens, positions, cache: model.newCache(), logits: 'all' });
    const want = bf16Dot(k) ? refDot : ref;
    const flat = Float64Array.from(want.logits.flatMap((r) => Array.from(r)));
    assert.ok(relErr(all, flat) < 1e-5, `${name} prefill${bf16Dot(k) ? ' (bf16 dot product)' : ''}: ${relErr(all, flat)}`);
    if (bf16Dot(k)) {
      const unrounded = Float64Array.from(ref.logits.flatMap((r) => Array.from(r)));
      assert.ok(relErr(all, unrounded) > 1e-4, `${name}: the rounded activations show (the test can fail)`);
    }
    const cache = model.newCache();
    for (let t = 0; t < tokens.length; t++) {
      const out = model.forward({ tokens: tokens.subarray(t, t + 1), positions: positions.subarray(t, t + 1), cache });
      assert.ok(relErr(out, ref.logits[t]) < 1e-5, `${name} decode step ${t}: ${relErr(out, ref.logits[t])}`);
    }
  }
  // weights 'bf16' on float32 weights: the products see each weight rounded to bf16 (ties to even); the
  // embedding lookup reads the float32 rows
  const f32: FloatWeights = weights;
  const copy: FloatWeights = {
    ...f32,
    lmHead: Float32Array.from(f32.lmHead, roundBf16),
    layers: f32.layers.map((l) => ({ ...l, ...Object.fromEntries(LINEAR_NAMES.map((n) => [n, Float32Array.from(l[n], roundBf16)])) })),
  };
  const refRounded = referenceForward(config, copy, { tokens, lastOnly: true });
  const refRoundedDot = referenceForward(config, copy, { tokens, lastOnly: true, linearInput: (x) => x.map(roundBf16) });
  for (const [name, k] of both) {
    const model = new LlamaModel(config, f32, k, { weights: 'bf16' });
    // every row's logits, so that the lm head's product is a prefill's too (with the dot product: rounded rows)
    const all = model.forward({ tokens, positions, cache: model.newCache(), logits: 'all' });
    const out = all.subarray(all.length - config.vocabSize);
    const want = bf16Dot(k) ? refRoundedDot : refRounded;
    assert.ok(relErr(out, want.logits[0]) < 1e-5, `${name} weights bf16: ${relErr(out, want.logits[0])}`);
    const plain = new LlamaModel(config, f32, k).forward({ tokens, positions, cache: model.newCache() });
    assert.ok(relErr(plain, refRounded.logits[0]) > 1e-4, `${name}: float32 weights differ from their bf16 rounding (the test can fail)`);
  }
});

test('a BF16 GGUF stays bf16 too (q and k rows back in Hugging Face order) and computes as the BF16 folder it came from', () => {
  const dir = join(root, 'bf16-gguf');
  writeRandomModelDir(dir, tinyRawConfig('llama', { num_hidden_layers: 2 }), { dtype: 'BF16', seed: 6, scale: 0.05 });
  const folder = loadModelDir(dir);
  const file = join(root, 'bf16.gguf');
  writeGguf(file, folder.config, folder.weights, folder.tokenizer, { dtype: 'bf16' });
  const g = loadModelDir(file);
  assert.ok(g.weights.layers[0].q instanceof Bf16Matrix && g.weights.layers[1].down instanceof Bf16Matrix);
  assert.deepEqual((g.weights.layers[0].q as Bf16Matrix).bits, (folder.weights.layers[0].q as Bf16Matrix).bits);
  assert.deepEqual((g.weights.layers[1].k as Bf16Matrix).bits, (folder.weights.layers[1].k as Bf16Matrix).bits);
  const tokens = Int32Array.from([257, 87, 111, 114, 108, 100]);
  const positions = Int32Array.from(tokens, (_, i) => i);
  const a = new LlamaModel(folder.config, folder.weights).forward({
    tokens,
    positions,
    cache: new LlamaModel(folder.config, folder.weights).newCache(),
  });
  const gm = new LlamaModel(g.config, g.weights);
  assert.deepEqual(gm.forward({ tokens, positions, cache: gm.newCache() }), a);
});

test('an F16 folder and an F16 GGUF keep their halves (auto) and compute as their float32 widening does', () => {
  const dir = join(root, 'f16');
  writeRandomModelDir(dir, tinyRawConfig('llama', { num_hidden_layers: 2 }), { dtype: 'F16', seed: 8, scale: 0.05 });
  const folder = loadModelDir(dir);
  assert.ok(folder.weights.layers[0].q instanceof Uint16Array && folder.weights.embed instanceof Uint16Array);
  const file = join(root, 'f16.gguf');
  writeGguf(file, folder.config, folder.weights, folder.tokenizer, { dtype: 'f16' });
  const g = loadModelDir(file);
  assert.ok(g.weights.layers[1].k instanceof Uint16Array);
  assert.deepEqual(g.weights.layers[1].k, folder.weights.layers[1].k, 'k rows back in Hugging Face order');
  const tokens = Int32Array.from([257, 70, 49, 54, 33]);
  const positions = Int32Array.from(tokens, (_, i) => i);
  const ref = referenceForward(folder.config, folder.weights, { tokens, lastOnly: true });
  for (const [name, k] of both) {
    for (const w of [folder.weights, g.weights]) {
      const model = new LlamaModel(folder.config, w, k);
      const out = model.forward({ tokens, positions, cache: model.newCache() });
      let num = 0,
        den = 0;
      for (let i = 0; i < out.length; i++) {
        num += (out[i] - ref.logits[0][i]) ** 2;
        den += ref.logits[0][i] ** 2;
      }
      assert.ok(Math.sqrt(num / den) < 1e-5, `${name}: ${Math.sqrt(num / den)}`);
    }
  }
});
