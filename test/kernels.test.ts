import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../src/util/rng.js';
import { jsKernels } from '../src/kernels/js.js';
import { loadNative, nativeAddonPath } from '../src/kernels/index.js';
import { loadNativeAddon } from '../src/kernels/native.js';
import { PACK_STRIP, packedWeightFloats, type AttendArgs, type Kernels } from '../src/kernels/types.js';
import { attend64 } from './reference/attention-f64.js';
import { withThreads } from './helpers/threads.js';

// ---------- float64 references: the definitions, written as plainly as possible ----------

function sgemm64(...[transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc]: Parameters<Kernels['sgemm']>): Float64Array {
  const out = Float64Array.from(c);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * lda + i] : a[i * lda + p];
        const bv = transB ? b[j * ldb + p] : b[p * ldb + j];
        s += av * bv;
      }
      out[i * ldc + j] = beta === 0 ? alpha * s : alpha * s + beta * c[i * ldc + j];
    }
  }
  return out;
}

function sgemv64(n: number, k: number, w: Float32Array, x: Float32Array, y: Float32Array, accumulate: boolean): Float64Array {
  const out = Float64Array.from(y);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let p = 0; p < k; p++) s += w[i * k + p] * x[p];
    out[i] = accumulate ? y[i] + s : s;
  }
  return out;
}

function rmsnorm64(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const rms = Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[r * dim + i] = (x[r * dim + i] / rms) * weight[i];
  }
  return out;
}

/** RoPE from the angle itself (theta^(-2i/d) * position), not from the tables the kernels read. */
function rope64(x: Float32Array, rows: number, heads: number, d: number, positions: Int32Array, theta: number): Float64Array {
  const out = Float64Array.from(x);
  const half = d / 2;
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) {
      const o = (r * heads + h) * d;
      for (let i = 0; i < half; i++) {
        const angle = positions[r] * Math.pow(theta, (-2 * i) / d);
        const x0 = x[o + i],
          x1 = x[o + half + i];
        out[o + i] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
        out[o + half + i] = x1 * Math.cos(angle) + x0 * Math.sin(angle);
      }
    }
  }
  return out;
}

function siluMul64(gate: Float32Array, up: Float32Array, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
  return out;
}

// ---------- helpers ----------

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, atol = 1e-4, rtol = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = -1,
    worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i],
      x = actual[i];
    if (Number.isNaN(e) && Number.isNaN(x)) continue;
    const err = Math.abs(x - e);
    if (!(err <= atol + rtol * Math.abs(e)) && (worst < 0 || !(err <= worstErr))) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) assert.fail(`${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]}`);
}

/** A random Float32Array view of `n` elements starting `offset` elements into a larger buffer. */
function view(rng: Rng, n: number, offset: number, fill: 'normal' | 'nan' = 'normal'): Float32Array {
  const buf = fill === 'nan' ? new Float32Array(offset + n + 5).fill(NaN) : rng.normalArray(offset + n + 5);
  return buf.subarray(offset, offset + n);
}

function sortedDistinct(rng: Rng, n: number, range: number): Int32Array {
  const set = new Set<number>();
  while (set.size < n) set.add(rng.int(range));
  return Int32Array.from([...set].sort((x, y) => x - y));
}

function ropeTables(maxPos: number, d: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = d / 2;
  const cos = new Float32Array(maxPos * half),
    sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.pow(theta, (-2 * i) / d);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

// ---------- cases, shared by every backend ----------

interface GemmCase {
  ta: boolean;
  tb: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  beta: number;
  pad: number;
  offset: number;
}

function gemmCases(): GemmCase[] {
  const cases: GemmCase[] = [];
  const shapes: [number, number, number][] = [
    [5, 7, 3],
    [33, 17, 65],
    [1, 40, 30],
    [64, 1, 9],
    [2, 3, 0],
  ];
  for (const ta of [false, true]) {
    for (const tb of [false, true]) {
      shapes.forEach(([m, n, k], s) => {
        for (const beta of [0, 1]) cases.push({ ta, tb, m, n, k, alpha: s % 2 ? 0.75 : 1, beta, pad: (s * 3) % 5, offset: s + 1 });
      });
    }
  }
  return cases;
}

function runGemm(kern: Kernels, c: GemmCase, seed: number): { got: Float32Array; want: Float64Array } {
  const rng = new Rng(seed);
  const aRows = c.ta ? c.k : c.m,
    aCols = c.ta ? c.m : c.k;
  const bRows = c.tb ? c.n : c.k,
    bCols = c.tb ? c.k : c.n;
  const lda = Math.max(1, aCols + c.pad),
    ldb = Math.max(1, bCols + c.pad + 1),
    ldc = c.n + c.pad + 2;
  const a = view(rng, aRows * lda, c.offset);
  const b = view(rng, bRows * ldb, c.offset + 1);
  // beta = 0 must ignore what C held, even NaN
  const cm = c.beta === 0 ? view(rng, c.m * ldc, c.offset + 2, 'nan') : view(rng, c.m * ldc, c.offset + 2);
  const want = sgemm64(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.beta, cm, ldc);
  // the whole underlying buffer, so writes outside the view would show up too
  const before = Float32Array.from(new Float32Array(cm.buffer));
  kern.sgemm(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.beta, cm, ldc);
  const after = new Float32Array(cm.buffer);
  for (let i = 0; i < before.length; i++) {
    const inView = i >= cm.byteOffset / 4 && i < cm.byteOffset / 4 + cm.length;
    const rel = i - cm.byteOffset / 4;
    if (!inView || rel % ldc >= c.n) assert.ok(Object.is(after[i], before[i]), `sgemm wrote outside C at buffer element ${i}`);
  }
  return { got: cm, want };
}

function gemmName(c: GemmCase): string {
  return `${c.ta ? 'T' : 'N'}${c.tb ? 'T' : 'N'} m=${c.m} n=${c.n} k=${c.k} alpha=${c.alpha} beta=${c.beta} pad=${c.pad}`;
}

/** The packed layout by its definition: strip s, depth i, column j holds W[32 s + j, i], or 0 past n. */
function packWeights64(w: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(packedWeightFloats(n, k));
  for (let s = 0; s * PACK_STRIP < n; s++) {
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < PACK_STRIP; j++) {
        const row = s * PACK_STRIP + j;
        out[(s * k + i) * PACK_STRIP + j] = row < n ? w[row * k + i] : 0;
      }
    }
  }
  return out;
}

interface PackedCase {
  m: number;
  n: number;
  k: number;
  accumulate: boolean;
  pad: number;
}
// tails of every blocking: 12-row tiles, 96-row blocks, 32-column strips, 8-strip work items, 640-deep k blocks
const packedCases: PackedCase[] = [
  { m: 5, n: 7, k: 3, accumulate: false, pad: 0 },
  { m: 13, n: 33, k: 65, accumulate: true, pad: 3 },
  { m: 97, n: 100, k: 70, accumulate: false, pad: 1 },
  { m: 200, n: 600, k: 1300, accumulate: true, pad: 5 },
  { m: 30, n: 70, k: 700, accumulate: false, pad: 0 },
  { m: 1, n: 40, k: 30, accumulate: false, pad: 0 },
  { m: 4, n: 9, k: 0, accumulate: false, pad: 2 },
  { m: 4, n: 9, k: 0, accumulate: true, pad: 2 },
];

/** C (+)= X . W^T through packWeights and sgemmPacked, X and C with padded rows inside larger buffers. */
function runPackedGemm(kern: Kernels, c: PackedCase, seed: number): { got: Float32Array; want: Float64Array } {
  const rng = new Rng(seed);
  const ldx = c.k + c.pad,
    ldc = c.n + c.pad + 1;
  const x = view(rng, c.m * ldx, 3),
    w = view(rng, c.n * c.k, 1);
  const cm = c.accumulate ? view(rng, c.m * ldc, 2) : view(rng, c.m * ldc, 2, 'nan');
  const want = sgemm64(false, true, c.m, c.n, c.k, 1, x, ldx, w, c.k, c.accumulate ? 1 : 0, cm, ldc);
  const packed = new Float32Array(packedWeightFloats(c.n, c.k)).fill(NaN);
  kern.packWeights(w, c.n, c.k, packed);
  assert.deepEqual(packed, packWeights64(w, c.n, c.k), `packWeights ${c.n}x${c.k}`);
  const before = Float32Array.from(new Float32Array(cm.buffer));
  kern.sgemmPacked(c.m, c.n, c.k, x, ldx, packed, cm, ldc, c.accumulate);
  const after = new Float32Array(cm.buffer);
  for (let i = 0; i < before.length; i++) {
    const rel = i - cm.byteOffset / 4;
    if (rel < 0 || rel >= cm.length || rel % ldc >= c.n)
      assert.ok(Object.is(after[i], before[i]), `sgemmPacked wrote outside C at buffer element ${i}`);
  }
  return { got: cm, want };
}

const packedName = (c: PackedCase) => `m=${c.m} n=${c.n} k=${c.k} accumulate=${c.accumulate}`;

interface PartsCase {
  m: number;
  k: number;
  ns: number[];
  accumulate: boolean;
}
// work items that span parts (q, k, v: 18 + 6 + 6 strips in groups of 8), an empty part, a partial strip mid-way,
// k blocks of at most 640
const partsCases: PartsCase[] = [
  { m: 97, k: 70, ns: [576, 192, 192], accumulate: false },
  { m: 13, k: 65, ns: [33, 7, 64], accumulate: true },
  { m: 200, k: 1300, ns: [600, 40], accumulate: true },
  { m: 5, k: 3, ns: [0, 9], accumulate: false },
  { m: 1, k: 30, ns: [40, 1, 2, 3], accumulate: false },
];

/** Each part's y (+)= X . W_p^T through sgemmPackedParts, the parts' packed weights back to back. */
function runPackedParts(kern: Kernels, c: PartsCase, seed: number): { got: Float32Array[]; want: Float64Array[] } {
  const rng = new Rng(seed);
  const x = view(rng, c.m * c.k, 3);
  const ws = c.ns.map((n) => view(rng, n * c.k, 1));
  const ys = c.ns.map((n) => (c.accumulate ? view(rng, c.m * n, 2) : view(rng, c.m * n, 2, 'nan')));
  const want = c.ns.map((n, p) => sgemm64(false, true, c.m, n, c.k, 1, x, c.k, ws[p], c.k, c.accumulate ? 1 : 0, ys[p], n));
  const packed = new Float32Array(c.ns.reduce((sum, n) => sum + packedWeightFloats(n, c.k), 0));
  let offset = 0;
  c.ns.forEach((n, p) => {
    kern.packWeights(ws[p], n, c.k, packed.subarray(offset));
    offset += packedWeightFloats(n, c.k);
  });
  const before = ys.map((y) => Float32Array.from(new Float32Array(y.buffer)));
  kern.sgemmPackedParts(
    c.m,
    c.k,
    x,
    c.k,
    packed,
    c.ns.map((n, p) => ({ n, y: ys[p] })),
    c.accumulate,
  );
  ys.forEach((y, p) => {
    const after = new Float32Array(y.buffer);
    for (let i = 0; i < after.length; i++) {
      const rel = i - y.byteOffset / 4;
      if (rel < 0 || rel >= y.length)
        assert.ok(Object.is(after[i], before[p][i]), `sgemmPackedParts wrote outside part ${p} at buffer element ${i}`);
    }
  });
  return { got: ys, want };
}

const partsName = (c: PartsCase) => `m=${c.m} k=${c.k} parts n=${c.ns.join(',')} accumulate=${c.accumulate}`;

interface GemvCase {
  n: number;
  k: number;
  accumulate: boolean;
  offset: number;
}
const gemvCases: GemvCase[] = [
  { n: 1, k: 1, accumulate: false, offset: 0 },
  { n: 37, k: 53, accumulate: false, offset: 3 },
  { n: 37, k: 53, accumulate: true, offset: 1 },
  { n: 300, k: 64, accumulate: true, offset: 7 },
  { n: 5, k: 0, accumulate: false, offset: 2 },
  // large enough to be split into row blocks across threads, with a partial last block
  { n: 1000, k: 700, accumulate: false, offset: 5 },
  { n: 1000, k: 700, accumulate: true, offset: 6 },
];

function runGemv(kern: Kernels, c: GemvCase, seed: number): { got: Float32Array; want: Float64Array } {
  const rng = new Rng(seed);
  const w = view(rng, c.n * c.k, c.offset),
    x = view(rng, c.k, c.offset + 1);
  const y = c.accumulate ? view(rng, c.n, c.offset + 2) : view(rng, c.n, c.offset + 2, 'nan');
  const want = sgemv64(c.n, c.k, w, x, y, c.accumulate);
  if (c.accumulate) kern.sgemv(c.n, c.k, w, x, y, true);
  else kern.sgemv(c.n, c.k, w, x, y);
  return { got: y, want };
}

interface AttendCase {
  name: string;
  rows: number;
  n: number;
  d: number;
  heads: number;
  firstHead: number;
  group: number;
  pad: number;
  /** how query positions relate to key positions */
  layout: 'causal' | 'gaps' | 'shuffled' | 'blind-row';
  qScale: number;
}

function attendCases(rowBlock: number, keyChunk: number): AttendCase[] {
  // one case a line: a table
  // prettier-ignore
  return [
    { name: 'group 1, causal prefill', rows: 20, n: 20, d: 16, heads: 2, firstHead: 1, group: 1, pad: 0, layout: 'causal', qScale: 1 },
    { name: 'group 3, positions with gaps, rows see a prefix', rows: 13, n: 40, d: 64, heads: 9, firstHead: 3, group: 3, pad: 5, layout: 'gaps', qScale: 1 },
    { name: 'group 3, a row that sees no key', rows: 9, n: 30, d: 8, heads: 3, firstHead: 0, group: 3, pad: 0, layout: 'blind-row', qScale: 1 },
    { name: 'group 3, unsorted query positions', rows: 17, n: 50, d: 32, heads: 6, firstHead: 3, group: 3, pad: 3, layout: 'shuffled', qScale: 1 },
    { name: 'n = 0', rows: 4, n: 0, d: 8, heads: 3, firstHead: 0, group: 3, pad: 0, layout: 'gaps', qScale: 1 },
    { name: 'rows = 1 (decode), group 3', rows: 1, n: 700, d: 64, heads: 9, firstHead: 6, group: 3, pad: 2, layout: 'gaps', qScale: 1 },
    { name: 'rows = 1 (decode) that sees no key', rows: 1, n: 10, d: 8, heads: 3, firstHead: 0, group: 3, pad: 0, layout: 'blind-row', qScale: 1 },
    { name: 'large scores (softmax stability)', rows: 6, n: 60, d: 64, heads: 3, firstHead: 0, group: 3, pad: 0, layout: 'gaps', qScale: 12 },
    { name: 'rows = 1 (decode), keys split across threads', rows: 1, n: 6000, d: 64, heads: 9, firstHead: 3, group: 3, pad: 0, layout: 'gaps', qScale: 2 },
    { name: 'one row block, keys split across threads, a row that sees no key', rows: 40, n: 3000, d: 64, heads: 3, firstHead: 0, group: 3, pad: 4, layout: 'blind-row', qScale: 2 },
    { name: `rows > row block (${rowBlock}) and keys > key chunk (${keyChunk})`, rows: rowBlock * 2 + 7, n: keyChunk * 2 + 75, d: 32, heads: 6, firstHead: 3, group: 3, pad: 1, layout: 'gaps', qScale: 2 },
  ];
}

function makeAttendArgs(c: AttendCase, seed: number): AttendArgs {
  const rng = new Rng(seed);
  const stride = c.heads * c.d + c.pad;
  let kPos: Int32Array;
  const qPos = new Int32Array(c.rows);
  if (c.layout === 'causal') {
    kPos = Int32Array.from({ length: c.n }, (_, i) => i);
    for (let r = 0; r < c.rows; r++) qPos[r] = c.n - c.rows + r;
  } else {
    // keys survive eviction with gaps; queries sit anywhere from before the first key to past the last
    kPos = sortedDistinct(rng, c.n, Math.max(1, 3 * c.n) + 10).map((p) => p + 5);
    const top = c.n > 0 ? kPos[c.n - 1] + 3 : 20;
    for (let r = 0; r < c.rows; r++) qPos[r] = Math.floor(((r + 1) / c.rows) * top);
    if (c.layout === 'shuffled') qPos.set(rng.shuffle(Array.from(qPos)));
    if (c.layout === 'blind-row') qPos[0] = 2; // below every key position (all >= 5)
  }
  return {
    q: view(rng, c.rows * stride, 3).map((v) => v * c.qScale),
    qRowStride: stride,
    out: view(rng, c.rows * stride, 1, 'nan'),
    rows: c.rows,
    headDim: c.d,
    firstHead: c.firstHead,
    group: c.group,
    qPos,
    keys: view(rng, c.n * c.d, 2),
    values: view(rng, c.n * c.d, 4),
    kPos,
    n: c.n,
    scale: 1 / Math.sqrt(c.d),
  };
}

/** Runs attention and checks that only the group's heads were written. */
function runAttend(kern: Kernels, args: AttendArgs): Float32Array {
  const before = Float32Array.from(args.out);
  kern.attendHead(args);
  const lo = args.firstHead * args.headDim,
    hi = (args.firstHead + args.group) * args.headDim;
  for (let i = 0; i < args.out.length; i++) {
    const col = i % args.qRowStride;
    if (col < lo || col >= hi) assert.ok(Object.is(args.out[i], before[i]), `attendHead wrote outside the group at ${i}`);
  }
  return args.out;
}

/** Every kernel of `kern` against the float64 definitions. */
function checkAgainstDefinitions(kern: Kernels, rowBlock: number, keyChunk: number): void {
  for (const c of gemmCases()) {
    test(`sgemm ${gemmName(c)}`, () => {
      const { got, want } = runGemm(kern, c, 11);
      assertClose(got, want, 'C');
    });
  }
  for (const c of packedCases) {
    test(`packWeights + sgemmPacked ${packedName(c)}`, () => {
      const { got, want } = runPackedGemm(kern, c, 13);
      assertClose(got, want, 'C');
    });
  }
  for (const c of partsCases) {
    test(`sgemmPackedParts ${partsName(c)}`, () => {
      const { got, want } = runPackedParts(kern, c, 14);
      got.forEach((y, p) => assertClose(y, want[p], `part ${p}`));
    });
  }
  for (const c of gemvCases) {
    test(`sgemv n=${c.n} k=${c.k} accumulate=${c.accumulate}`, () => {
      const { got, want } = runGemv(kern, c, 12);
      assertClose(got, want, 'y');
    });
  }
  test('rmsnorm, separate and in-place output, and a prefill chunk of rows shared out on threads', () => {
    const rng = new Rng(13);
    for (const [rows, dim] of [
      [3, 37],
      [2, 576],
      [517, 576],
    ]) {
      const x = view(rng, rows * dim, 2).map((v) => v * 3),
        w = view(rng, dim, 1);
      const want = rmsnorm64(x, w, rows, dim, 1e-5);
      const out = new Float32Array(rows * dim);
      kern.rmsnorm(out, x, w, rows, dim, 1e-5);
      assertClose(out, want, `rmsnorm ${rows}x${dim}`, 1e-5);
      kern.rmsnorm(x, x, w, rows, dim, 1e-5);
      assertClose(x, want, `in-place rmsnorm ${rows}x${dim}`, 1e-5);
    }
  });
  test('rope with positions that have gaps', () => {
    const rng = new Rng(14);
    const theta = 100000;
    for (const d of [8, 64]) {
      const rows = 5,
        heads = 3;
      const positions = Int32Array.from([0, 7, 3, 150, 151]);
      const { cos, sin } = ropeTables(200, d, theta);
      const x = view(rng, rows * heads * d, 3);
      const want = rope64(x, rows, heads, d, positions, theta);
      kern.rope(x, rows, heads, d, positions, cos, sin);
      assertClose(x, want, `rope d=${d}`, 1e-5);
    }
  });
  test('copyRows: a strided block into a compact one, against an element loop; rows outside an array throw', () => {
    const rng = new Rng(16);
    for (const [rows, width, stride, srcOff, dstOff] of [
      [5, 64, 192, 128, 0],
      [1, 3, 3, 0, 7],
      [300, 16, 40, 24, 32],
      [0, 8, 8, 0, 0],
    ]) {
      const src = view(rng, srcOff + Math.max(rows - 1, 0) * stride + width, 1);
      const dst = view(rng, dstOff + rows * width + 5, 2);
      const want = Float32Array.from(dst);
      for (let r = 0; r < rows; r++) for (let i = 0; i < width; i++) want[dstOff + r * width + i] = src[srcOff + r * stride + i];
      kern.copyRows(dst, dstOff, src, srcOff, stride, rows, width);
      assert.deepEqual(dst, want, `rows ${rows} width ${width} stride ${stride}`);
    }
    const a = new Float32Array(100);
    assert.throws(() => kern.copyRows(a, 0, new Float32Array(99), 0, 10, 10, 10), RangeError);
    assert.throws(() => kern.copyRows(new Float32Array(99), 0, a, 0, 10, 10, 10), RangeError);
    assert.throws(() => kern.copyRows(a, 0, a, 0, 5, 2, 10), /srcStride must be >= width/);
  });
  test('siluMul, including large |gate|, in-place output, and lengths shared out on threads (with a ragged tail)', () => {
    const rng = new Rng(15);
    for (const n of [1000, 300_007]) {
      const gate = view(rng, n, 1).map((v) => v * 4),
        up = view(rng, n, 2);
      for (const at of [0, 65_530, n - 7].filter((a) => a + 7 <= n)) gate.set([0, -100, 100, -30, 30, 88.5, -88.5], at);
      const want = siluMul64(gate, up, n);
      const out = new Float32Array(n);
      kern.siluMul(out, gate, up, n);
      assertClose(out, want, `siluMul n=${n}`, 1e-6, 1e-5);
      kern.siluMul(gate, gate, up, n);
      assertClose(gate, want, `in-place siluMul n=${n}`, 1e-6, 1e-5);
    }
  });
  for (const c of attendCases(rowBlock, keyChunk)) {
    test(`attendHead: ${c.name}`, () => {
      const args = makeAttendArgs(c, 16);
      const want = attend64(args);
      assertClose(runAttend(kern, args), want, 'out', 1e-5, 1e-4);
    });
  }
}

// ---------- the suites ----------

const native = loadNative();
const skipNative = native ? false : `native addon not built (${nativeAddonPath}); run node scripts/build-native.js`;
const info = native ? loadNativeAddon(nativeAddonPath).info() : undefined;
const rowBlock = info?.attendRowBlock ?? 64,
  keyChunk = info?.attendKeyChunk ?? 512;

describe('js kernels against float64 definitions', () => {
  checkAgainstDefinitions(jsKernels, rowBlock, keyChunk);
});

describe('native kernels against float64 definitions', { skip: skipNative }, () => {
  if (native) checkAgainstDefinitions(native, rowBlock, keyChunk);
});

describe('native attention on 1 and 4 threads (row blocks and key splits spread over threads)', { skip: skipNative }, () => {
  for (const threads of [1, 4]) {
    test(`every attendHead case, ${threads} thread(s)`, () =>
      withThreads(threads, () => {
        for (const c of attendCases(rowBlock, keyChunk)) {
          const args = makeAttendArgs(c, 31);
          assertClose(runAttend(native!, args), attend64(args), c.name, 1e-5, 1e-4);
        }
      }));
  }
});

describe('native kernels against js kernels', { skip: skipNative }, () => {
  test('every sgemm case', () => {
    for (const c of gemmCases()) assertClose(runGemm(native!, c, 21).got, runGemm(jsKernels, c, 21).got, gemmName(c));
  });
  test('every sgemv case', () => {
    for (const c of gemvCases) assertClose(runGemv(native!, c, 22).got, runGemv(jsKernels, c, 22).got, `sgemv ${c.n}x${c.k}`);
  });
  test('sgemv split across 1 and 4 threads', () => {
    for (const threads of [1, 4]) {
      withThreads(threads, () => {
        for (const c of gemvCases)
          assertClose(runGemv(native!, c, 24).got, runGemv(jsKernels, c, 24).got, `sgemv ${c.n}x${c.k} on ${threads} threads`);
      });
    }
  });
  test('sgemmPacked: every case on 1 and 4 threads', () => {
    for (const threads of [1, 4]) {
      withThreads(threads, () => {
        for (const c of packedCases)
          assertClose(runPackedGemm(native!, c, 25).got, runPackedGemm(jsKernels, c, 25).got, `${packedName(c)} on ${threads} threads`);
        for (const c of partsCases) {
          const js = runPackedParts(jsKernels, c, 26).got;
          runPackedParts(native!, c, 26).got.forEach((y, p) => assertClose(y, js[p], `${partsName(c)} part ${p} on ${threads} threads`));
        }
      });
    }
  });
  test('every attendHead case', () => {
    for (const c of attendCases(rowBlock, keyChunk)) {
      assertClose(runAttend(native!, makeAttendArgs(c, 23)), runAttend(jsKernels, makeAttendArgs(c, 23)), c.name, 1e-5, 1e-4);
    }
  });
  test('bad arguments throw instead of touching memory', () => {
    const a = new Float32Array(6),
      b = new Float32Array(6),
      c = new Float32Array(3);
    assert.throws(() => native!.sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2), /c has 3 elements, needs 4/);
    assert.throws(() => native!.sgemm(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, new Float32Array(4), 2), /lda = 2 is below the row width 3/);
    assert.throws(() => native!.sgemv(4, 1, a, b, c), /y has 3 elements, needs 4/);
    assert.throws(
      () => native!.sgemmPacked(2, 33, 3, a, 3, new Float32Array(64 * 3 - 1), new Float32Array(66), 33, false),
      /packed has 191 elements, needs 192/,
    );
    assert.throws(() => native!.packWeights(a, 3, 2, new Float32Array(63)), /out has 63 elements, needs 64/);
    // two parts of 33 and 1 columns need 64 * 3 + 32 * 3 packed floats
    const parts = [
      { n: 33, y: new Float32Array(66) },
      { n: 1, y: new Float32Array(2) },
    ];
    assert.throws(() => native!.sgemmPackedParts(2, 3, a, 3, new Float32Array(287), parts, false), /packed has 287 elements, needs 288/);
    assert.throws(
      () => native!.sgemmPackedParts(2, 3, a, 3, new Float32Array(288), [parts[0], { n: 1, y: new Float32Array(1) }], false),
      /c has 1 elements, needs 2/,
    );
    assert.throws(
      () => native!.sgemmPackedParts(2, 3, a, 3, new Float32Array(288 * 5), [...parts, ...parts, parts[0]], false),
      /at most 4 parts/,
    );
    const { cos, sin } = ropeTables(4, 4, 10000);
    assert.throws(() => native!.rope(new Float32Array(4), 1, 1, 4, Int32Array.from([4]), cos, sin), /outside the cos\/sin tables/);
  });
});

// ---------- backend selection, in child processes (the choice is made once per process) ----------

const here = dirname(fileURLToPath(import.meta.url));
const kernelsIndex = join(here, '..', 'src', 'kernels', 'index.js');

function pickIn(indexJs: string, env: Record<string, string | undefined>): { stdout: string; stderr: string; status: number | null } {
  const script = `const m = await import(${JSON.stringify(indexJs)});
    try { m.kernels(); m.kernels(); process.stdout.write(m.kernels().name); } catch (e) { process.stdout.write('error: ' + e.message); }`;
  const childEnv: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: '1' };
  for (const [k, v] of Object.entries(env))
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: childEnv });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

describe('native compute ceiling', { skip: skipNative }, () => {
  test('fmaPeak measures a positive rate on one thread and refuses a bad thread count', () => {
    const addon = loadNativeAddon(nativeAddonPath);
    assert.ok(addon.fmaPeak, 'the addon exports fmaPeak');
    const one = addon.fmaPeak(1);
    assert.ok(Number.isFinite(one) && one > 0.1, `fmaPeak(1) = ${one}`);
    assert.throws(() => addon.fmaPeak!(0), /fmaPeak: threads must be >= 1/);
  });
});

describe('backend selection', () => {
  test('KVEVICT_BACKEND=js picks the TypeScript kernels without a warning', () => {
    const r = pickIn(kernelsIndex, { KVEVICT_BACKEND: 'js' });
    assert.equal(r.stdout, 'js');
    assert.equal(r.stderr, '');
  });
  test('an unknown KVEVICT_BACKEND names the option', () => {
    assert.match(pickIn(kernelsIndex, { KVEVICT_BACKEND: 'cuda' }).stdout, /^error: KVEVICT_BACKEND must be "js" or "native", got "cuda"/);
  });
  test('KVEVICT_BACKEND=native and the default pick the addon', { skip: skipNative }, () => {
    assert.equal(pickIn(kernelsIndex, { KVEVICT_BACKEND: 'native' }).stdout, 'native');
    const r = pickIn(kernelsIndex, { KVEVICT_BACKEND: undefined });
    assert.equal(r.stdout, 'native');
    assert.equal(r.stderr, '');
  });
  test('without the addon: js with exactly one warning line, and KVEVICT_BACKEND=native fails', () => {
    // a copy of the compiled kernels whose package root has no build/ folder
    const root = mkdtempSync(join(tmpdir(), 'kvevict-noaddon-'));
    try {
      const src = join(here, '..', 'src');
      for (const f of ['paths.js', 'errors.js', 'util', 'quant', 'kernels'])
        cpSync(join(src, f), join(root, 'dist', 'src', f), { recursive: true });
      writeFileSync(join(root, 'package.json'), JSON.stringify({ type: 'module' }));
      const index = join(root, 'dist', 'src', 'kernels', 'index.js');
      const r = pickIn(index, { KVEVICT_BACKEND: undefined });
      assert.equal(r.stdout, 'js');
      const lines = r.stderr.split('\n').filter((l) => l.length > 0);
      assert.equal(lines.length, 1, `expected one warning line, got: ${r.stderr}`);
      assert.match(lines[0], /native OpenBLAS kernels not built/);
      assert.match(pickIn(index, { KVEVICT_BACKEND: 'native' }).stdout, /^error: KVEVICT_BACKEND=native but the addon .* was not built/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  test('OPENBLAS_CORETYPE is read when the addon loads (SkylakeX by default on AVX-512)', { skip: skipNative }, () => {
    const script = (indexJs: string) => `const m = await import(${JSON.stringify(indexJs)});
      const n = await import(${JSON.stringify(join(here, '..', 'src', 'kernels', 'native.js'))});
      m.loadNative(); process.stdout.write(n.loadNativeAddon(m.nativeAddonPath).info().corename);`;
    const run = (coretype: string | undefined) => {
      const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: '1' };
      if (coretype === undefined) delete env.OPENBLAS_CORETYPE;
      else env.OPENBLAS_CORETYPE = coretype;
      return spawnSync(process.execPath, ['--input-type=module', '-e', script(kernelsIndex)], { encoding: 'utf8', env }).stdout;
    };
    assert.equal(run('Haswell'), 'Haswell');
    const avx512 = existsSync('/proc/cpuinfo') && /\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
    if (avx512) assert.equal(run(undefined), 'SkylakeX');
  });
  test(
    'OpenBLAS workers sleep right after a call (OPENBLAS_THREAD_TIMEOUT 4 by default) instead of spinning',
    { skip: skipNative },
    (t) => {
      // CPU time this process burns in the 150 ms after a 2-thread sgemm, while its own thread sleeps
      const script = `const m = await import(${JSON.stringify(kernelsIndex)});
      const k = m.loadNative(); const a = new Float32Array(512 * 576).fill(0.01), w = new Float32Array(1536 * 576).fill(0.01), c = new Float32Array(512 * 1536);
      for (let i = 0; i < 3; i++) k.sgemm(false, true, 512, 1536, 576, 1, a, 576, w, 576, 0, c, 1536);
      const before = process.cpuUsage(); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 150);
      const u = process.cpuUsage(before); process.stdout.write(String((u.user + u.system) / 1000));`;
      const idleCpuMs = (timeout: string | undefined) => {
        const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: '2' };
        if (timeout === undefined) delete env.OPENBLAS_THREAD_TIMEOUT;
        else env.OPENBLAS_THREAD_TIMEOUT = timeout;
        const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env });
        return Number(r.stdout);
      };
      const spinning = idleCpuMs('30'); // 2^30 cycles: the workers spin through the whole wait
      // one core, or an OpenBLAS that sleeps anyway: nothing to tell apart here
      if (!(spinning > 60)) return t.skip(`workers that spin used only ${spinning} ms of CPU: one core, or an OpenBLAS that sleeps anyway`);
      const byDefault = idleCpuMs(undefined);
      assert.ok(byDefault < 30, `OpenBLAS used ${byDefault} ms of CPU while idle (${spinning} ms with timeout 2^30)`);
    },
  );
});
