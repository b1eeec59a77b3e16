/**
 * The engine's kernels against float64 definitions: fused matrix-vector products (sgemvParts, float32 and f16
 * weights), half <-> float conversions (every half; rounding against a brute-force nearest half), single-row
 * attention (the vectorized decode path: tiles of keys, online softmax across tiles, key ranges split across
 * threads) and prefill blocks of head_dim 64 (the native kernel's own path: key chunks, rescaled running sums,
 * query counts off the tile sizes), each also over an f16 cache (keys and values as half bits, against float64 over
 * the halves' values), on the TypeScript and the native kernels, on 1 and 4 threads.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';
import { jsKernels } from '../src/kernels/js.js';
import { loadNative, nativeAddonPath } from '../src/kernels/index.js';
import { loadNativeAddon } from '../src/kernels/native.js';
import { PACK_STRIP, packedWeightFloats, type AttendArgs, type CacheRows, type GemvPart, type Kernels } from '../src/kernels/types.js';
import { attend64 } from './reference/attention-f64.js';
import { roundToHalf } from './reference/llama-f64.js';
import { withThreads } from './helpers/threads.js';

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, atol = 1e-5, rtol = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= atol + rtol * Math.abs(expected[i]))) assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

/** `n` normal values as a view `offset` elements into a larger buffer (so alignment varies). */
function view(rng: Rng, n: number, offset: number): Float32Array {
  return rng.normalArray(offset + n + 3).subarray(offset, offset + n);
}

// ---------- sgemvParts ----------

interface PartsCase {
  k: number;
  ns: number[];
  accumulate: boolean;
}
const partsCases: PartsCase[] = [
  { k: 576, ns: [576, 192, 192], accumulate: false }, // q, k, v of SmolLM2-135M
  { k: 576, ns: [1536, 1536], accumulate: false }, // gate, up
  { k: 53, ns: [7, 1, 130], accumulate: true }, // k with a tail, n not a multiple of 4
  { k: 7, ns: [5, 3, 2, 9], accumulate: false }, // k below one vector, four parts
  { k: 700, ns: [1000], accumulate: true }, // several row blocks on the thread pool
  { k: 0, ns: [4, 2], accumulate: false },
];

/** Runs a case; y buffers are longer than n (as scratch buffers are) and their tails must stay untouched. */
function runParts(kern: Kernels, c: PartsCase, seed: number): void {
  const rng = new Rng(seed);
  const x = view(rng, c.k, 1);
  const parts = c.ns.map((n, p) => ({ w: view(rng, n * c.k, p + 2), n, y: view(rng, n + 5, p) }));
  const before = parts.map((p) => Float32Array.from(p.y));
  kern.sgemvParts(c.k, x, parts, c.accumulate);
  parts.forEach((p, i) => {
    const want = new Float64Array(p.n);
    for (let r = 0; r < p.n; r++) {
      let s = 0;
      for (let j = 0; j < c.k; j++) s += p.w[r * c.k + j] * x[j];
      want[r] = c.accumulate ? before[i][r] + s : s;
    }
    assertClose(p.y.subarray(0, p.n), want, `part ${i} (${p.n}x${c.k})`);
    for (let r = p.n; r < p.y.length; r++) assert.ok(Object.is(p.y[r], before[i][r]), `part ${i} written past n at ${r}`);
  });
}

// ---------- IEEE halves (f16 weights) ----------

/** The value of half bits h by the IEEE 754 definition, in float64. */
function halfValue(h: number): number {
  const sign = h >= 0x8000 ? -1 : 1;
  const e = Math.floor(h / 1024) % 32;
  const m = h % 1024;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return e === 0 ? sign * m * Math.pow(2, -24) : sign * (1 + m / 1024) * Math.pow(2, e - 15);
}

/** Nearest half by search over every finite half, ties to the even bit pattern (brute force, float64). */
function nearestHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // past the largest half by half a unit in the last place or more: infinity
  if (a >= 65504 + 16) return sign | 0x7c00;
  let best = 0,
    bestErr = Infinity;
  for (let h = 0; h < 0x7c00; h++) {
    const err = Math.abs(halfValue(h) - a);
    if (err < bestErr || (err === bestErr && (h & 1) === 0)) {
      best = h;
      bestErr = err;
    }
  }
  return sign | best;
}

function checkHalfConversions(kern: Kernels): void {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const f = new Float32Array(65536);
  kern.halfToFloat(all, f, 65536);
  for (let h = 0; h < 65536; h++) {
    const want = halfValue(h);
    if (Number.isNaN(want) ? !Number.isNaN(f[h]) : !Object.is(f[h], Math.fround(want)))
      assert.fail(`halfToFloat(0x${h.toString(16)}) = ${f[h]}, expected ${want}`);
  }
  const rng = new Rng(7);
  const xs = [
    0,
    -0,
    1,
    -1,
    65504,
    65519.99,
    65520,
    -70000,
    1e-8,
    2 ** -24,
    2 ** -25,
    3 * 2 ** -26,
    2 ** -25 * 1.0001,
    6.1e-5,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    NaN,
    Infinity,
    -Infinity,
  ];
  for (let i = 0; i < 300; i++) xs.push(rng.normal() * 10 ** (rng.int(9) - 6));
  const src = Float32Array.from(xs);
  const got = new Uint16Array(src.length + 40); // past 16 values the vector path runs too
  const long = new Float32Array(src.length + 40);
  long.set(src);
  kern.floatToHalf(long, got, long.length);
  src.forEach((x, i) => {
    const want = nearestHalf(x);
    if (Number.isNaN(x)) assert.ok((got[i] & 0x7c00) === 0x7c00 && (got[i] & 0x3ff) !== 0, `floatToHalf(NaN) is a NaN`);
    else assert.equal(got[i], want, `floatToHalf(${x}) = 0x${got[i].toString(16)}, expected 0x${want.toString(16)}`);
  });
}

/**
 * Weights packed as halves (the f16 prefill): packWeights' layout by its definition, then sgemmPackedParts and
 * sgemmPacked against float64 over the halves' exact values; nothing written past a part's rows.
 */
function runHalfPacked(kern: Kernels, seed: number): void {
  const rng = new Rng(seed);
  for (const [m, k, ns, accumulate] of [
    [97, 70, [576, 192, 192], false],
    [13, 1300, [33, 7], true],
    [5, 3, [40], false],
  ] as [number, number, number[], boolean][]) {
    const x = view(rng, m * k, 2);
    const ws = ns.map((n) => Uint16Array.from({ length: n * k }, () => nearestHalfFast(rng.normal() * 0.5)));
    const packed = new Uint16Array(ns.reduce((sum, n) => sum + packedWeightFloats(n, k), 0) + 3).fill(0xffff);
    let offset = 0;
    ns.forEach((n, p) => {
      kern.packWeights(ws[p], n, k, packed.subarray(offset));
      for (let s = 0; s * PACK_STRIP < n; s++) {
        for (let i = 0; i < k; i++) {
          for (let j = 0; j < PACK_STRIP; j++) {
            const row = s * PACK_STRIP + j,
              got = packed[offset + (s * k + i) * PACK_STRIP + j];
            if (got !== (row < n ? ws[p][row * k + i] : 0))
              assert.fail(`packed halves of part ${p}: strip ${s}, depth ${i}, column ${j} holds 0x${got.toString(16)}`);
          }
        }
      }
      offset += packedWeightFloats(n, k);
    });
    assert.equal(packed[offset], 0xffff, 'packWeights wrote past its strips');
    const ys = ns.map((n, p) => view(rng, m * n + 4, p).subarray(0, m * n + 4));
    const before = ys.map((y) => Float32Array.from(y));
    const check = (y: Float32Array, p: number, what: string) => {
      const n = ns[p];
      for (let r = 0; r < m; r++) {
        for (let c = 0; c < n; c++) {
          let s = 0;
          for (let i = 0; i < k; i++) s += x[r * k + i] * halfValue(ws[p][c * k + i]);
          const want = accumulate ? before[p][r * n + c] + s : s;
          const got = y[r * n + c];
          if (!(Math.abs(got - want) <= 1e-5 + 1e-4 * Math.abs(want)))
            assert.fail(`${what} part ${p} (${m}x${n}x${k}) [${r}, ${c}]: ${got}, expected ${want}`);
        }
      }
      for (let i = m * n; i < y.length; i++) assert.ok(Object.is(y[i], before[p][i]), `${what} part ${p} written past its rows at ${i}`);
    };
    kern.sgemmPackedParts(
      m,
      k,
      x,
      k,
      packed,
      ns.map((n, p) => ({ n, y: ys[p] })),
      accumulate,
    );
    ys.forEach((y, p) => check(y, p, 'sgemmPackedParts'));
    // the single-product entry point reads halves as well
    ys[0].set(before[0]);
    kern.sgemmPacked(m, ns[0], k, x, k, packed, ys[0], ns[0], accumulate);
    check(ys[0], 0, 'sgemmPacked');
  }
}

/** Half and float32 matrices mixed in one call, against float64 over the halves' exact values. */
function runHalfParts(kern: Kernels, seed: number): void {
  const rng = new Rng(seed);
  for (const [k, ns, accumulate] of [
    [576, [576, 192, 192], false],
    [53, [7, 130], true],
    [700, [1000], false],
  ] as [number, number[], boolean][]) {
    const x = view(rng, k, 1);
    const parts: GemvPart[] = ns.map((n, p) => {
      const w = p % 2 === 0 ? Uint16Array.from({ length: n * k }, () => nearestHalfFast(rng.normal() * 0.1)) : view(rng, n * k, p);
      return { w, n, y: view(rng, n + 5, p) };
    });
    const before = parts.map((p) => Float32Array.from(p.y));
    kern.sgemvParts(k, x, parts, accumulate);
    parts.forEach((p, i) => {
      for (let r = 0; r < p.n; r++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += (p.w instanceof Uint16Array ? halfValue(p.w[r * k + j]) : (p.w as Float32Array)[r * k + j]) * x[j];
        const want = accumulate ? before[i][r] + s : s;
        if (!(Math.abs(p.y[r] - want) <= 1e-5 + 1e-4 * Math.abs(want)))
          assert.fail(`half part ${i} (${p.n}x${k}) row ${r}: ${p.y[r]}, expected ${want}`);
      }
      for (let r = p.n; r < p.y.length; r++) assert.ok(Object.is(p.y[r], before[i][r]), `part ${i} written past n at ${r}`);
    });
    // the single-matrix entry point takes halves as well
    const one = parts[0];
    const y = new Float32Array(one.n);
    kern.sgemv(one.n, k, one.w, x, y);
    const y2 = new Float32Array(one.n);
    kern.sgemvParts(k, x, [{ w: one.w, n: one.n, y: y2 }]);
    assertClose(y, y2, 'sgemv with halves = sgemvParts with halves');
  }
}

/** Any half near x (the exact one does not matter here: the reference reads the bits back). */
function nearestHalfFast(x: number): number {
  const out = new Uint16Array(1);
  jsKernels.floatToHalf(Float32Array.of(x), out, 1);
  return out[0];
}

/** Rows of a strided block into halves: every value the brute-force nearest half; the rest of dst untouched. */
function checkCopyRowsHalf(kern: Kernels): void {
  const rng = new Rng(11);
  const rows = 5,
    width = 37,
    stride = 50,
    srcOffset = 3,
    dstOffset = 7;
  const src = Float32Array.from({ length: srcOffset + rows * stride }, () => rng.normal() * 10 ** (rng.int(7) - 4));
  src[srcOffset] = 65520; // rounds past the largest half: infinity
  src[srcOffset + 1] = 2 ** -25; // a tie between 0 and the smallest subnormal: even (0)
  src[srcOffset + 2] = 1 + 2 ** -11; // a tie between 1 and the next half: even (1)
  const dst = new Uint16Array(dstOffset + rows * width + 4).fill(0x1234);
  kern.copyRows(dst, dstOffset, src, srcOffset, stride, rows, width);
  for (let i = 0; i < dst.length; i++) {
    const r = Math.floor((i - dstOffset) / width);
    if (i < dstOffset || r >= rows) assert.equal(dst[i], 0x1234, `copyRows wrote outside its rows at ${i}`);
    else {
      const x = src[srcOffset + r * stride + ((i - dstOffset) % width)];
      assert.equal(dst[i], nearestHalf(x), `copyRows: ${x} became 0x${dst[i].toString(16)}`);
    }
  }
  assert.equal(dst[dstOffset], 0x7c00);
  assert.equal(dst[dstOffset + 1], 0);
  assert.equal(dst[dstOffset + 2], 0x3c00);
}

// ---------- single-row attention ----------

interface DecodeCase {
  n: number;
  d: number;
  group: number;
  firstHead: number;
  heads: number;
  qScale: number;
  rising?: boolean;
}

function decodeCases(): DecodeCase[] {
  const cases: DecodeCase[] = [];
  // key counts around the 16-key vectors and the 256-key tiles, and long enough to split across threads
  for (const n of [1, 15, 16, 17, 255, 256, 257, 700, 2100]) cases.push({ n, d: 64, group: 3, firstHead: 3, heads: 9, qScale: 1 });
  for (const group of [1, 2, 4, 6, 8]) cases.push({ n: 301, d: 64, group, firstHead: 0, heads: 8, qScale: 1 });
  cases.push({ n: 600, d: 128, group: 4, firstHead: 4, heads: 8, qScale: 1 });
  cases.push({ n: 300, d: 48, group: 3, firstHead: 0, heads: 3, qScale: 1 }); // not a vectorized shape
  cases.push({ n: 300, d: 64, group: 5, firstHead: 0, heads: 5, qScale: 1 }); // group beyond the vectorized ones
  // scores that rise tile after tile: the running max changes and earlier tiles are rescaled
  cases.push({ n: 1000, d: 64, group: 3, firstHead: 0, heads: 3, qScale: 4, rising: true });
  cases.push({ n: 9000, d: 64, group: 3, firstHead: 6, heads: 9, qScale: 3 });
  return cases;
}

function decodeName(c: DecodeCase): string {
  return `n=${c.n} d=${c.d} group=${c.group}${c.rising ? ' rising scores' : ''}`;
}

/** One decode row: keys at positions with gaps, the query somewhere past the middle (it sees a prefix). */
function decodeArgs(c: DecodeCase, seed: number): AttendArgs {
  const rng = new Rng(seed);
  const stride = c.heads * c.d + 3;
  const kPos = Int32Array.from({ length: c.n }, (_, i) => 2 * i + (i % 3 === 0 ? 1 : 0));
  const keys = view(rng, c.n * c.d, 2);
  if (c.rising) for (let j = 0; j < c.n; j++) keys[j * c.d] = (j / c.n) * 8; // dimension 0 grows with the key index
  const q = view(rng, stride, 1).map((v) => v * c.qScale);
  if (c.rising) for (let h = 0; h < c.heads; h++) q[h * c.d] = Math.abs(q[h * c.d]) + 2;
  const qPos = Int32Array.from([c.n > 1 ? kPos[Math.floor((c.n * 4) / 5)] : 5]);
  return {
    q,
    qRowStride: stride,
    out: new Float32Array(stride).fill(NaN),
    rows: 1,
    headDim: c.d,
    firstHead: c.firstHead,
    group: c.group,
    qPos,
    keys,
    values: view(rng, c.n * c.d, 4),
    kPos,
    n: c.n,
    scale: 1 / Math.sqrt(c.d),
  };
}

/**
 * The same arguments over an f16 cache: keys and values as the bits of nearby halves (run), and the float32
 * values of those halves, decoded by this file's own halfValue (the reference's input).
 */
function asHalfCache(args: AttendArgs): { run: AttendArgs; reference: AttendArgs } {
  const bits = (x: CacheRows) => Uint16Array.from(x, (v) => nearestHalfFast(v));
  const keys = bits(args.keys),
    values = bits(args.values);
  return {
    run: { ...args, keys, values },
    reference: { ...args, keys: Float32Array.from(keys, halfValue), values: Float32Array.from(values, halfValue) },
  };
}

/** The kernel's arguments and attend64's: the same, or (half) over an f16 cache. */
function casePair(args: AttendArgs, half: boolean): { run: AttendArgs; reference: AttendArgs } {
  return half ? asHalfCache(args) : { run: args, reference: args };
}

function checkDecode(kern: Kernels, seed: number, half = false): void {
  for (const c of decodeCases()) {
    const { run: args, reference } = casePair(decodeArgs(c, seed), half);
    const want = attend64(reference);
    kern.attendHead(args);
    // heads outside the group keep their NaN: nothing else was written
    for (let i = 0; i < args.out.length; i++) {
      const head = Math.floor(i / c.d);
      if (i >= c.heads * c.d || head < c.firstHead || head >= c.firstHead + c.group)
        assert.ok(Number.isNaN(args.out[i]), `${decodeName(c)}: wrote outside the group at ${i}`);
      else
        assert.ok(
          Math.abs(args.out[i] - want[i]) <= 1e-5 + 1e-4 * Math.abs(want[i]),
          `${decodeName(c)}: element ${i} is ${args.out[i]}, expected ${want[i]}`,
        );
    }
  }
}

// ---------- prefill blocks of head_dim 64 (the native kernel's own AVX-512 path) ----------

interface BlockCase {
  /** head_dim (default 64: the native fused path; others run on BLAS) */
  d?: number;
  rows: number;
  n: number;
  group: number;
  heads: number;
  firstHead: number;
  qScale: number;
  rising?: boolean;
  blind?: boolean;
}
const blockCases: BlockCase[] = [
  { rows: 150, n: 700, group: 3, heads: 9, firstHead: 3, qScale: 1 }, // several row blocks and key chunks
  { rows: 70, n: 300, group: 4, heads: 8, firstHead: 4, qScale: 1 }, // a full block of 64 rows x 4 heads
  { rows: 37, n: 520, group: 1, heads: 2, firstHead: 1, qScale: 2 }, // query counts off every tile size
  { rows: 9, n: 1000, group: 2, heads: 2, firstHead: 0, qScale: 3, rising: true, blind: true }, // rescaled chunks, a row that sees nothing
  { rows: 40, n: 3000, group: 3, heads: 3, firstHead: 0, qScale: 2 }, // one row block: keys split across threads
  // rows x group leaves 5, 2 and 3 queries after the tiles of 6
  { rows: 23, n: 300, group: 1, heads: 1, firstHead: 0, qScale: 1 },
  { rows: 5, n: 100, group: 4, heads: 4, firstHead: 0, qScale: 1 },
  { rows: 7, n: 100, group: 3, heads: 6, firstHead: 3, qScale: 1 },
  // the BLAS blocks: several key chunks, rows that see part of one
  { d: 128, rows: 70, n: 1100, group: 2, heads: 4, firstHead: 2, qScale: 1 },
  { d: 32, rows: 20, n: 600, group: 3, heads: 3, firstHead: 0, qScale: 2, rising: true },
];

function blockName(c: BlockCase): string {
  return `d=${c.d ?? 64} rows=${c.rows} n=${c.n} group=${c.group}${c.rising ? ' rising scores' : ''}${c.blind ? ' blind row' : ''}`;
}

/** Keys at positions with gaps; queries spread from the first keys to past the last, in order. */
function blockArgs(c: BlockCase, seed: number): AttendArgs {
  const rng = new Rng(seed);
  const d = c.d ?? 64,
    stride = c.heads * d + 5;
  const kPos = Int32Array.from({ length: c.n }, (_, i) => 10 + 2 * i + (i % 5 === 0 ? 1 : 0));
  const keys = view(rng, c.n * d, 2);
  if (c.rising) for (let j = 0; j < c.n; j++) keys[j * d] = (j / c.n) * 8;
  const q = view(rng, c.rows * stride, 1).map((v) => v * c.qScale);
  if (c.rising)
    for (let r = 0; r < c.rows; r++) for (let h = 0; h < c.heads; h++) q[r * stride + h * d] = Math.abs(q[r * stride + h * d]) + 2;
  const top = kPos[c.n - 1] + 3;
  const qPos = Int32Array.from({ length: c.rows }, (_, r) => Math.floor(((r + 1) / c.rows) * top));
  if (c.blind) qPos[0] = 3; // below every key position
  return {
    q,
    qRowStride: stride,
    out: new Float32Array(c.rows * stride).fill(NaN),
    rows: c.rows,
    headDim: d,
    firstHead: c.firstHead,
    group: c.group,
    qPos,
    keys,
    values: view(rng, c.n * d, 4),
    kPos,
    n: c.n,
    scale: 1 / Math.sqrt(d),
  };
}

function checkBlocks(kern: Kernels, seed: number, half = false): void {
  for (const c of blockCases) {
    const { run: args, reference } = casePair(blockArgs(c, seed), half);
    const want = attend64(reference);
    kern.attendHead(args);
    const d = c.d ?? 64,
      lo = c.firstHead * d,
      hi = (c.firstHead + c.group) * d;
    for (let i = 0; i < args.out.length; i++) {
      const col = i % args.qRowStride;
      if (col < lo || col >= hi) assert.ok(Number.isNaN(args.out[i]), `${blockName(c)}: wrote outside the group at ${i}`);
      else
        assert.ok(
          Math.abs(args.out[i] - want[i]) <= 1e-5 + 1e-4 * Math.abs(want[i]),
          `${blockName(c)}: element ${i} is ${args.out[i]}, expected ${want[i]}`,
        );
    }
  }
}

// ---------- suites ----------

describe('js engine kernels against float64 definitions', () => {
  partsCases.forEach((c, i) =>
    test(`sgemvParts k=${c.k} n=${c.ns.join(',')} accumulate=${c.accumulate}`, () => runParts(jsKernels, c, 40 + i)),
  );
  test('half <-> float conversions: every half exactly, rounding to nearest even by brute force', () => checkHalfConversions(jsKernels));
  test('sgemv and sgemvParts with f16 weights', () => runHalfParts(jsKernels, 45));
  test('weights packed as halves: packWeights, sgemmPacked and sgemmPackedParts', () => runHalfPacked(jsKernels, 46));
  test('single-row attention', () => checkDecode(jsKernels, 50));
  test('prefill blocks, head_dim 64', () => checkBlocks(jsKernels, 51));
  test('single-row attention over an f16 cache', () => checkDecode(jsKernels, 52, true));
  test('prefill blocks over an f16 cache', () => checkBlocks(jsKernels, 53, true));
  test('cache rows into halves: copyRows rounds to the nearest half', () => checkCopyRowsHalf(jsKernels));
  test("the float64 reference's roundToHalf is the brute-force nearest half", () => {
    const rng = new Rng(12);
    const xs = [0, 1, -1, 65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -14, 0.1];
    for (let i = 0; i < 200; i++) xs.push(rng.normal() * 10 ** (rng.int(9) - 6));
    for (const x of xs) assert.equal(roundToHalf(x), halfValue(nearestHalf(x)), `roundToHalf(${x})`);
  });
  test('sgemvParts takes at most 4 parts', () => {
    const p = { w: new Float32Array(1), n: 1, y: new Float32Array(1) };
    assert.throws(() => jsKernels.sgemvParts(1, new Float32Array(1), [p, p, p, p, p]), /at most 4 parts/);
  });
});

const native = loadNative();
const skipNative = native ? false : `native addon not built (${nativeAddonPath}); run node scripts/build-native.js`;

describe('native engine kernels against float64 definitions, on 1 and 4 threads', { skip: skipNative }, () => {
  const addon = loadNativeAddon(nativeAddonPath);
  /** A test that runs `check` with the addon on `threads` threads, restoring the count afterwards. */
  const onThreads = (name: string, threads: number, check: () => void) =>
    test(`${name}, ${threads} thread(s)`, () => withThreads(threads, check));
  for (const threads of [1, 4]) {
    onThreads('sgemvParts', threads, () => partsCases.forEach((c, i) => runParts(native!, c, 60 + i)));
    onThreads('half conversions and f16 sgemv', threads, () => {
      checkHalfConversions(native!);
      runHalfParts(native!, 65 + threads);
      runHalfPacked(native!, 67 + threads);
      // a long array: the conversion's blocks run on the pool
      const n = (1 << 18) + 37;
      const rng = new Rng(threads);
      const src = Float32Array.from({ length: n }, () => rng.normal());
      const h1 = new Uint16Array(n),
        h2 = new Uint16Array(n);
      native!.floatToHalf(src, h1, n);
      jsKernels.floatToHalf(src, h2, n);
      assert.deepEqual(h1, h2, 'native floatToHalf = TypeScript floatToHalf on a long array');
      const f1 = new Float32Array(n),
        f2 = new Float32Array(n);
      native!.halfToFloat(h1, f1, n);
      jsKernels.halfToFloat(h1, f2, n);
      assert.deepEqual(f1, f2, 'native halfToFloat = TypeScript halfToFloat on a long array');
    });
    onThreads('single-row attention', threads, () => checkDecode(native!, 70 + threads));
    onThreads('prefill blocks, head_dim 64', threads, () => checkBlocks(native!, 80 + threads));
    onThreads('single-row attention over an f16 cache', threads, () => checkDecode(native!, 90 + threads, true));
    onThreads('prefill blocks over an f16 cache', threads, () => checkBlocks(native!, 95 + threads, true));
  }
  test('cache rows into halves: copyRows rounds to the nearest half', () => checkCopyRowsHalf(native!));
  test('attention: keys and values of different types, or an array of neither type, are refused', () => {
    const args = decodeArgs({ n: 20, d: 64, group: 1, firstHead: 0, heads: 1, qScale: 1 }, 3);
    for (const k of [native!, jsKernels])
      assert.throws(
        () => k.attendHead({ ...args, keys: new Uint16Array(args.keys.length) }),
        /must both be Float32Arrays or both Uint16Arrays/,
      );
    assert.throws(
      () => native!.attendHead({ ...args, keys: new Int32Array(args.keys.length) as unknown as Float32Array }),
      /keys must be a Float32Array or a Uint16Array/,
    );
    assert.throws(() => native!.attendHead({ ...args, keys: new Uint16Array(10), values: new Uint16Array(10) }), /keys has 10 elements/);
  });
  test('packed halves: a packed array of the other type than the weights is refused', () => {
    const h = new Uint16Array(64 * 3),
      f = new Float32Array(64 * 3);
    assert.throws(() => native!.packWeights(new Uint16Array(6), 2, 3, f), /out must be a Uint16Array/);
    assert.throws(() => native!.packWeights(new Float32Array(6), 2, 3, h), /out must be a Float32Array/);
    assert.throws(() => jsKernels.packWeights(new Uint16Array(6), 2, 3, f), /must both be Float32Array or both Uint16Array/);
  });
  test('sgemvParts: bad arguments throw instead of touching memory', () => {
    assert.ok(addon.sgemvParts, 'the addon has sgemvParts');
    const x = new Float32Array(4),
      w = new Float32Array(8),
      y = new Float32Array(2);
    assert.throws(() => addon.sgemvParts!(4, x, false, w, 3, new Float32Array(3)), /w has 8 elements, needs 12/);
    assert.throws(() => addon.sgemvParts!(4, x, false, w, 2, new Float32Array(1)), /y has 1 elements, needs 2/);
    assert.throws(() => addon.sgemvParts!(5, x, false, w, 1, y), /x has 4 elements, needs 5/);
    assert.throws(() => addon.sgemvParts!(4, x, false, w, 2), /expected 6 arguments|in threes/);
    assert.throws(() => addon.sgemvParts!(4, x, false, w, 2, y, w), /in threes/);
    assert.throws(() => addon.sgemvParts!(1, x, false, w, 1, y, w, 1, y, w, 1, y, w, 1, y, w, 1, y), /too many parts|expected/);
    assert.throws(() => addon.sgemvParts!(4, x, false, new Uint16Array(7), 2, y), /w has 7 elements, needs 8/);
    assert.throws(
      () => addon.sgemvParts!(4, x, false, new Int32Array(8) as unknown as Float32Array, 2, y),
      /Float32Array or a Uint16Array/,
    );
    assert.throws(() => addon.halfToFloat!(new Uint16Array(3), new Float32Array(4), 4), /src has 3 elements, needs 4/);
    assert.throws(() => addon.floatToHalf!(new Float32Array(4), new Uint16Array(2), 4), /dst has 2 elements, needs 4/);
  });
});
