/**
 * Kernel benchmark at SmolLM2-135M shapes (hidden 576, MLP 1536, vocab 49152, head_dim 64, GQA groups of 3):
 * sgemm GFLOP/s against the machine's ceiling (measured: independent FMA chains on every thread, the addon's fmaPeak), sgemv GB/s against memory bandwidth, attention GFLOP/s at
 * 2048 and 8192 keys, the element-wise kernels, and native/js ratios. Also checks by measurement that the
 * OpenBLAS core type chosen in src/kernels/index.ts takes effect (a child process forced to Haswell).
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { jsKernels } from '../src/kernels/js.js';
import { loadNative, nativeAddonPath, packedWeightFloats } from '../src/kernels/index.js';
import { loadNativeAddon, type NativeAddon, type NativeInfo } from '../src/kernels/native.js';
import type { AttendArgs, Kernels } from '../src/kernels/types.js';
import { Rng } from '../src/util/rng.js';
import { formatTable } from './table.js';

/** Nominal single-precision peak of this 2-core AVX-512 machine: 2 cores x 2 FMA x 16 lanes x 2 flops x ~3.5 GHz. */
const NOMINAL_GFLOPS = 450;
/** Nominal DRAM bandwidth of the machine, GB/s. */
const NOMINAL_GBPS = 45;

/** Best wall time of `fn` in seconds: one warm-up call, then at least `minReps` timed calls within `budgetS`. */
function timeBest(fn: () => void, budgetS = 1.5, minReps = 5, maxReps = 200): number {
  fn();
  let best = Infinity;
  const start = performance.now();
  for (let reps = 0; reps < minReps || (reps < maxReps && performance.now() - start < budgetS * 1000); reps++) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
  }
  return best / 1000;
}

function randomArray(rng: Rng, n: number, scale = 1): Float32Array {
  // uniform is enough for timing and much cheaper than normals for 28M elements
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.next() - 0.5) * scale;
  return a;
}

interface SgemmRow {
  shape: string;
  m: number;
  n: number;
  k: number;
  nativeGflops: number;
  native1ThreadGflops: number;
  jsGflops: number;
  jsRows: number;
  ofCeiling: number;
  nativeOverJs: number;
  /** the same product from weights packed once (sgemmPacked, what a prefill runs): on all threads, on one, and over OpenBLAS */
  packedGflops: number;
  packed1ThreadGflops: number;
  packedOverSgemm: number;
}
/** Products that read the same X (a layer's q, k, v; gate, up): one sgemmPackedParts call against one sgemmPacked per part. */
interface FusedRow {
  shape: string;
  m: number;
  k: number;
  ns: number[];
  fusedGflops: number;
  separateGflops: number;
  fusedOverSeparate: number;
}
interface SgemvRow {
  shape: string;
  n: number;
  k: number;
  nativeHotGBps: number;
  nativeColdGBps: number;
  sgemmM1GBps: number;
  jsGBps: number;
  nativeOverJs: number;
  /** the same product with f16 weights, cold: bytes are the halves' (n*k*2) */
  nativeColdHalfGBps: number;
}

/** Sustained streaming: one sgemv over a matrix far larger than the caches (as a decode step reads every weight once). */
export interface StreamRow {
  bytes: number;
  f32GBps: number;
  f16GBps: number;
  f32HugeGBps: number;
  f16HugeGBps: number;
}
interface AttendRow {
  case: string;
  rows: number;
  keys: number;
  nativeGflops: number;
  ofCeiling: number;
  native1ThreadGflops: number;
  nativeMs: number;
  jsGflops: number | null;
  nativeOverJs: number | null;
  kvGBps: number | null;
}
interface ElementRow {
  kernel: string;
  shape: string;
  nativeUs: number;
  jsUs: number;
  nativeOverJs: number;
}
interface CoretypeRow {
  coretype: string;
  shape: string;
  gflops: number;
}

export interface KernelBenchResult {
  native: NativeInfo | null;
  nominalGflops: number;
  /** independent FMA chains on every thread / on one: the compute ceiling the rows are measured against */
  peakGflops: number | null;
  peak1ThreadGflops: number | null;
  nominalGBps: number;
  sgemm: SgemmRow[];
  fused: FusedRow[];
  sgemv: SgemvRow[];
  stream: StreamRow | null;
  attention: AttendRow[];
  elementwise: ElementRow[];
  coretype: CoretypeRow[];
}

/** Weights are [out, in], activations [rows, in]: C[m, n] = A[m, k] . W[n, k]^T, as a linear layer calls it. */
function benchSgemm(native: Kernels, addon: NativeAddon, threads: number, peakGflops: number, rng: Rng): SgemmRow[] {
  const shapes: [string, number, number, number][] = [
    ['q/o proj', 512, 576, 576],
    ['gate/up', 512, 1536, 576],
    ['down', 512, 576, 1536],
    ['lm head', 512, 49152, 576],
    ['square (ceiling check)', 2048, 2048, 2048],
  ];
  const rows: SgemmRow[] = [];
  for (const [label, m, n, k] of shapes) {
    const a = randomArray(rng, m * k),
      w = randomArray(rng, n * k),
      c = new Float32Array(m * n);
    const flops = 2 * m * n * k;
    const run = () => native.sgemm(false, true, m, n, k, 1, a, k, w, k, 0, c, n);
    const packed = new Float32Array(packedWeightFloats(n, k));
    native.packWeights(w, n, k, packed);
    const runPacked = () => native.sgemmPacked(m, n, k, a, k, packed, c, n, false);
    const nativeGflops = flops / timeBest(run) / 1e9;
    const packedGflops = flops / timeBest(runPacked) / 1e9;
    addon.setThreads(1);
    const native1ThreadGflops = flops / timeBest(run) / 1e9;
    const packed1ThreadGflops = flops / timeBest(runPacked) / 1e9;
    addon.setThreads(threads);
    // js speed does not depend on m: time a slice of rows worth ~60 MFLOP
    const jsRows = Math.max(1, Math.min(m, Math.floor(6e7 / (2 * n * k))));
    const jsGflops =
      (2 * jsRows * n * k) / timeBest(() => jsKernels.sgemm(false, true, jsRows, n, k, 1, a, k, w, k, 0, c, n), 0.5, 1, 5) / 1e9;
    rows.push({
      shape: `${label} ${m}x${n}x${k}`,
      m,
      n,
      k,
      nativeGflops,
      native1ThreadGflops,
      jsGflops,
      jsRows,
      ofCeiling: nativeGflops / peakGflops,
      nativeOverJs: nativeGflops / jsGflops,
      packedGflops,
      packed1ThreadGflops,
      packedOverSgemm: packedGflops / nativeGflops,
    });
  }
  return rows;
}

/**
 * As a prefill runs them: 30 layers' copies of the weights in turn (a sweep reads each once, from memory as in the
 * engine, where attention and the other products come between), best sweep of several.
 */
function benchFused(native: Kernels, rng: Rng): FusedRow[] {
  const layers = 30,
    m = 512,
    k = 576;
  const rows: FusedRow[] = [];
  for (const [label, ns] of [
    ['q|k|v', [576, 192, 192]],
    ['gate|up', [1536, 1536]],
  ] as [string, number[]][]) {
    const x = randomArray(rng, m * k);
    const parts = ns.map((n) => ({ n, y: new Float32Array(m * n) }));
    const offsets = ns.map((_, p) => ns.slice(0, p).reduce((sum, n) => sum + packedWeightFloats(n, k), 0));
    const total = ns.reduce((sum, n) => sum + packedWeightFloats(n, k), 0);
    const packed = Array.from({ length: layers }, () => {
      const buf = new Float32Array(total);
      ns.forEach((n, p) => native.packWeights(randomArray(rng, n * k), n, k, buf.subarray(offsets[p])));
      return buf;
    });
    const flops = layers * 2 * m * k * ns.reduce((a, b) => a + b, 0);
    const fused = () => {
      for (const buf of packed) native.sgemmPackedParts(m, k, x, k, buf, parts, false);
    };
    const separate = () => {
      for (const buf of packed) parts.forEach((p, i) => native.sgemmPacked(m, p.n, k, x, k, buf.subarray(offsets[i]), p.y, p.n, false));
    };
    // alternate, so that both meet the same moments of the machine
    let fusedS = Infinity,
      separateS = Infinity;
    for (let r = 0; r < 6; r++) {
      fusedS = Math.min(fusedS, timeBest(fused, 0, 1, 1));
      separateS = Math.min(separateS, timeBest(separate, 0, 1, 1));
    }
    rows.push({
      shape: `${label} ${m}x(${ns.join('+')})x${k}`,
      m,
      k,
      ns,
      fusedGflops: flops / fusedS / 1e9,
      separateGflops: flops / separateS / 1e9,
      fusedOverSeparate: separateS / fusedS,
    });
  }
  return rows;
}

/** Bytes moved are the weights (n*k floats); "cold" cycles through copies that together exceed the caches. */
function benchSgemv(native: Kernels, rng: Rng): SgemvRow[] {
  const rows: SgemvRow[] = [];
  for (const [label, n, k] of [
    ['gate/up', 1536, 576],
    ['lm head', 49152, 576],
  ] as [string, number, number][]) {
    const bytes = n * k * 4;
    const copies = Math.max(1, Math.ceil(256e6 / bytes));
    const first = randomArray(rng, n * k);
    const ws = Array.from({ length: copies }, (_, i) => (i === 0 ? first : first.slice()));
    const x = randomArray(rng, k),
      y = new Float32Array(n),
      c = new Float32Array(n);
    const nativeHotGBps = bytes / timeBest(() => native.sgemv(n, k, ws[0], x, y)) / 1e9;
    let next = 0;
    const cold = () => {
      native.sgemv(n, k, ws[next], x, y);
      next = (next + 1) % copies;
    };
    const nativeColdGBps = bytes / timeBest(cold) / 1e9;
    next = 0;
    const sgemmM1GBps =
      bytes /
      timeBest(() => {
        native.sgemm(false, true, 1, n, k, 1, x, k, ws[next], k, 0, c, n);
        next = (next + 1) % copies;
      }) /
      1e9;
    const jsGBps = bytes / timeBest(() => jsKernels.sgemv(n, k, ws[0], x, y), 0.5, 1, 20) / 1e9;
    const hs = ws.slice(0, Math.ceil(copies / 2) + 1).map((w) => {
      const h = new Uint16Array(w.length);
      native.floatToHalf(w, h, w.length);
      return h;
    });
    next = 0;
    const nativeColdHalfGBps =
      bytes /
      2 /
      timeBest(() => {
        native.sgemv(n, k, hs[next], x, y);
        next = (next + 1) % hs.length;
      }) /
      1e9;
    rows.push({
      shape: `${label} [${n}, ${k}]`,
      n,
      k,
      nativeHotGBps,
      nativeColdGBps,
      sgemmM1GBps,
      jsGBps,
      nativeOverJs: nativeColdGBps / jsGBps,
      nativeColdHalfGBps,
    });
  }
  return rows;
}

/**
 * One sgemv over 512 MB of f32 weights and one over 512 MB of halves, each on ordinary 4 KB pages and on 2 MB
 * huge pages (as loaded weights are: kernels/arena.ts), in alternating rounds, best of 3: the bandwidth a
 * decode step can have.
 */
export function benchStream(native: Kernels, rng: Rng): StreamRow {
  const k = 576;
  const bytes = 512 * 2 ** 20;
  const n = Math.floor(bytes / 4 / k);
  const w = randomArray(rng, n * k, 0.1);
  const x = randomArray(rng, k),
    y = new Float32Array(2 * n);
  const h = new Uint16Array(2 * n * k);
  native.floatToHalf(w, h, n * k);
  native.floatToHalf(w, h.subarray(n * k), n * k);
  const wHuge = new Float32Array(native.largeBuffer(w.byteLength));
  wHuge.set(w);
  const hHuge = new Uint16Array(native.largeBuffer(h.byteLength));
  hHuge.set(h);
  const best = { f32: Infinity, f16: Infinity, f32Huge: Infinity, f16Huge: Infinity };
  for (let round = 0; round < 3; round++) {
    best.f32 = Math.min(
      best.f32,
      timeBest(() => native.sgemv(n, k, w, x, y), 0, 1, 1),
    );
    best.f32Huge = Math.min(
      best.f32Huge,
      timeBest(() => native.sgemv(n, k, wHuge, x, y), 0, 1, 1),
    );
    best.f16 = Math.min(
      best.f16,
      timeBest(() => native.sgemv(2 * n, k, h, x, y), 0, 1, 1),
    );
    best.f16Huge = Math.min(
      best.f16Huge,
      timeBest(() => native.sgemv(2 * n, k, hHuge, x, y), 0, 1, 1),
    );
  }
  const gbps = (s: number) => (n * k * 4) / s / 1e9;
  return {
    bytes: n * k * 4,
    f32GBps: gbps(best.f32),
    f16GBps: gbps(best.f16),
    f32HugeGBps: gbps(best.f32Huge),
    f16HugeGBps: gbps(best.f16Huge),
  };
}

/** FLOPs of QK^T and PV over the keys each (row, head) sees. */
function attendFlops(a: AttendArgs): number {
  let seen = 0;
  for (let r = 0; r < a.rows; r++) {
    let v = 0;
    while (v < a.n && a.kPos[v] <= a.qPos[r]) v++;
    seen += v;
  }
  return 4 * a.headDim * a.group * seen;
}

function benchAttention(native: Kernels, addon: NativeAddon, threads: number, peakGflops: number, rng: Rng): AttendRow[] {
  const d = 64,
    heads = 9,
    group = 3;
  const rows: AttendRow[] = [];
  for (const keys of [2048, 8192]) {
    const kv = {
      keys: randomArray(rng, keys * d, 2),
      values: randomArray(rng, keys * d, 2),
      kPos: Int32Array.from({ length: keys }, (_, i) => i),
    };
    const cases: [string, number][] = [
      ['full causal prefill', keys],
      ['last 512-row prefill chunk', 512],
      ['8-row lookahead', 8],
      ['decode', 1],
    ];
    for (const [label, r] of cases) {
      const q = randomArray(rng, r * heads * d, 2);
      const args: AttendArgs = {
        q,
        qRowStride: heads * d,
        out: new Float32Array(r * heads * d),
        rows: r,
        headDim: d,
        firstHead: 3,
        group,
        qPos: Int32Array.from({ length: r }, (_, i) => keys - r + i),
        ...kv,
        n: keys,
        scale: 1 / Math.sqrt(d),
      };
      const flops = attendFlops(args);
      const t = timeBest(() => native.attendHead(args));
      addon.setThreads(1);
      const t1 = timeBest(() => native.attendHead(args));
      addon.setThreads(threads);
      // the js kernel takes seconds at full prefill: time it on the cases below ~1 GFLOP
      const tj = flops < 1.2e9 ? timeBest(() => jsKernels.attendHead(args), 0.5, 1, 20) : null;
      rows.push({
        case: `${label}, ${keys} keys`,
        rows: r,
        keys,
        nativeGflops: flops / t / 1e9,
        ofCeiling: flops / t / 1e9 / peakGflops,
        native1ThreadGflops: flops / t1 / 1e9,
        nativeMs: t * 1000,
        jsGflops: tj === null ? null : flops / tj / 1e9,
        nativeOverJs: tj === null ? null : tj / t,
        kvGBps: r === 1 ? (2 * keys * d * 4) / t / 1e9 : null,
      });
    }
  }
  return rows;
}

function benchElementwise(native: Kernels, rng: Rng): ElementRow[] {
  const rowsN = 512,
    hidden = 576,
    heads = 9,
    d = 64,
    inter = 1536,
    maxPos = 4096;
  const x = randomArray(rng, rowsN * hidden),
    w = randomArray(rng, hidden),
    out = new Float32Array(rowsN * hidden);
  const qk = randomArray(rng, rowsN * heads * d);
  const pos = Int32Array.from({ length: rowsN }, (_, i) => i + 1000);
  const cos = randomArray(rng, (maxPos * d) / 2),
    sin = randomArray(rng, (maxPos * d) / 2);
  const gate = randomArray(rng, rowsN * inter, 8),
    up = randomArray(rng, rowsN * inter),
    act = new Float32Array(rowsN * inter);
  const cases: [string, string, (k: Kernels) => void][] = [
    ['rmsnorm', `${rowsN}x${hidden}`, (k) => k.rmsnorm(out, x, w, rowsN, hidden, 1e-5)],
    ['rope', `${rowsN}x${heads}x${d}`, (k) => k.rope(qk, rowsN, heads, d, pos, cos, sin)],
    ['siluMul', `${rowsN}x${inter}`, (k) => k.siluMul(act, gate, up, rowsN * inter)],
    ['rmsnorm (decode)', `1x${hidden}`, (k) => k.rmsnorm(out, x, w, 1, hidden, 1e-5)],
  ];
  return cases.map(([kernel, shape, fn]) => {
    const nativeUs = timeBest(() => fn(native), 0.3) * 1e6;
    const jsUs = timeBest(() => fn(jsKernels), 0.3) * 1e6;
    return { kernel, shape, nativeUs, jsUs, nativeOverJs: jsUs / nativeUs };
  });
}

/** sgemm GFLOP/s in a fresh process with OPENBLAS_CORETYPE forced (it is read once, when OpenBLAS loads). */
function coretypeGflops(coretype: string | undefined, m: number, n: number, k: number): number {
  const script = `
    const { createRequire } = await import('node:module');
    const addon = createRequire(import.meta.url)(${JSON.stringify(nativeAddonPath)});
    const a = new Float32Array(${m * k}).fill(0.5), w = new Float32Array(${n * k}).fill(0.25), c = new Float32Array(${m * n});
    let best = Infinity;
    for (let i = 0; i < 12; i++) { const t = performance.now(); addon.sgemm(false, true, ${m}, ${n}, ${k}, 1, a, ${k}, w, ${k}, 0, c, ${n}); best = Math.min(best, performance.now() - t); }
    process.stdout.write(JSON.stringify({ gflops: ${2 * m * n * k} / best / 1e6 }));`;
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(cpus().length) };
  if (coretype === undefined) delete env.OPENBLAS_CORETYPE;
  else env.OPENBLAS_CORETYPE = coretype;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`coretype probe failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { gflops: number }).gflops;
}

/** The core type this process uses, SkylakeX, Haswell (AVX2) and OpenBLAS's own detection, each in a fresh process. */
function benchCoretype(chosen: string): CoretypeRow[] {
  const rows: CoretypeRow[] = [];
  const cores: [string, string | undefined][] = [
    [`${chosen} (this process)`, chosen],
    ['SkylakeX', 'SkylakeX'],
    ['Haswell', 'Haswell'],
    ['unset (OpenBLAS detects)', undefined],
  ];
  for (const [m, n, k] of [
    [512, 576, 576],
    [512, 1536, 576],
  ]) {
    for (const [label, core] of cores) rows.push({ coretype: label, shape: `${m}x${n}x${k}`, gflops: coretypeGflops(core, m, n, k) });
  }
  return rows;
}

const f = (x: number | null, digits = 1): string => (x === null ? '-' : x.toFixed(digits));

export async function runBench(): Promise<KernelBenchResult> {
  const native = loadNative();
  const rng = new Rng(7);
  if (!native) {
    process.stdout.write(`kernels: native addon not built (${nativeAddonPath}); nothing to compare\n`);
    return {
      native: null,
      nominalGflops: NOMINAL_GFLOPS,
      peakGflops: null,
      peak1ThreadGflops: null,
      nominalGBps: NOMINAL_GBPS,
      sgemm: [],
      fused: [],
      sgemv: [],
      stream: null,
      attention: [],
      elementwise: [],
      coretype: [],
    };
  }
  const addon = loadNativeAddon(nativeAddonPath);
  const info = addon.info();
  const threads = info.threads;
  process.stdout.write(
    `kernels: OpenBLAS core ${info.corename}, ${threads} threads (OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? 'unset'})\n\n`,
  );

  // the compute ceiling, measured (an addon built before fmaPeak: the nominal one)
  const peakGflops = addon.fmaPeak ? addon.fmaPeak(threads) : NOMINAL_GFLOPS;
  const peak1ThreadGflops = addon.fmaPeak ? addon.fmaPeak(1) : NOMINAL_GFLOPS / threads;
  process.stdout.write(
    `float32 FMA ceiling, measured: ${peakGflops.toFixed(0)} GFLOP/s on ${threads} threads, ${peak1ThreadGflops.toFixed(0)} on 1 (nominal ${NOMINAL_GFLOPS})\n\n`,
  );
  const sgemm = benchSgemm(native, addon, threads, peakGflops, rng);
  process.stdout.write(
    formatTable(
      `sgemm C = A . W^T, SmolLM2-135M prefill of 512 tokens (measured ceiling ${peakGflops.toFixed(0)} GFLOP/s)`,
      [
        'shape m x n x k',
        'OpenBLAS GFLOP/s',
        `1 thread`,
        '% ceiling',
        'packed GFLOP/s',
        '1 thread',
        '% ceiling',
        'packed/OpenBLAS',
        'js GFLOP/s',
        'native/js',
      ],
      sgemm.map((r) => [
        r.shape,
        r.nativeGflops,
        r.native1ThreadGflops,
        `${(100 * r.ofCeiling).toFixed(0)}%`,
        r.packedGflops,
        r.packed1ThreadGflops,
        `${((100 * r.packedGflops) / peakGflops).toFixed(0)}%`,
        r.packedOverSgemm,
        r.jsGflops,
        r.nativeOverJs,
      ]),
    ) + '\n',
  );

  const fused = benchFused(native, rng);
  process.stdout.write(
    formatTable(
      "fused products from packed weights: one sgemmPackedParts against one sgemmPacked per part (30 layers' weights in turn)",
      ['parts m x n x k', 'fused GFLOP/s', '% ceiling', 'one call per part', 'speed-up'],
      fused.map((r) => [
        r.shape,
        r.fusedGflops,
        `${((100 * r.fusedGflops) / peakGflops).toFixed(0)}%`,
        r.separateGflops,
        r.fusedOverSeparate,
      ]),
    ) + '\n',
  );

  const coretype = benchCoretype(info.corename);
  process.stdout.write(
    formatTable(
      'OpenBLAS core type (fresh process each; read when the library loads)',
      ['core', 'shape', 'GFLOP/s'],
      coretype.map((r) => [r.coretype, r.shape, r.gflops]),
    ) + '\n',
  );

  const sgemv = benchSgemv(native, rng);
  process.stdout.write(
    formatTable(
      `sgemv y = W . x, one decode token (bytes = weights; memory ceiling about ${NOMINAL_GBPS} GB/s)`,
      ['W [n, k]', 'native GB/s hot', 'cold', 'sgemm m=1 cold', 'js GB/s', 'native/js'],
      sgemv.map((r) => [r.shape, r.nativeHotGBps, r.nativeColdGBps, r.sgemmM1GBps, r.jsGBps, r.nativeOverJs]),
    ) + '\n',
  );
  process.stdout.write(
    formatTable(
      'f16 weights (Uint16Array halves), cold; GB/s of halves read',
      ['W [n, k]', 'native GB/s cold', 'weights per second over f32'],
      sgemv.map((r) => [r.shape, r.nativeColdHalfGBps, (2 * r.nativeColdHalfGBps) / r.nativeColdGBps]),
    ) + '\n',
  );
  const stream = benchStream(native, rng);
  process.stdout.write(
    formatTable(
      'sustained stream: one sgemv over 512 MB of weights (far past the caches; a decode step reads all its weights once)',
      ['weights', 'GB/s, 4 KB pages', 'GB/s, 2 MB pages', '2 MB over 4 KB'],
      [
        ['f32', stream.f32GBps, stream.f32HugeGBps, stream.f32HugeGBps / stream.f32GBps],
        ['f16', stream.f16GBps, stream.f16HugeGBps, stream.f16HugeGBps / stream.f16GBps],
      ],
    ) + '\n',
  );

  const attention = benchAttention(native, addon, threads, peakGflops, rng);
  process.stdout.write(
    formatTable(
      'attendHead, head_dim 64, GQA group 3 (one KV head)',
      ['case', 'native GFLOP/s', '% ceiling', '1 thread', 'native ms', 'js GFLOP/s', 'native/js', 'KV GB/s'],
      attention.map((r) => [
        r.case,
        r.nativeGflops,
        `${(100 * r.ofCeiling).toFixed(0)}%`,
        r.native1ThreadGflops,
        r.nativeMs,
        f(r.jsGflops, 2),
        f(r.nativeOverJs),
        f(r.kvGBps),
      ]),
    ) + '\n',
  );

  const elementwise = benchElementwise(native, rng);
  process.stdout.write(
    formatTable(
      'element-wise kernels, one 512-token chunk',
      ['kernel', 'shape', 'native us', 'js us', 'native/js'],
      elementwise.map((r) => [r.kernel, r.shape, r.nativeUs, r.jsUs, r.nativeOverJs]),
    ),
  );

  return {
    native: info,
    nominalGflops: NOMINAL_GFLOPS,
    peakGflops,
    peak1ThreadGflops,
    nominalGBps: NOMINAL_GBPS,
    sgemm,
    fused,
    sgemv,
    stream,
    attention,
    elementwise,
    coretype,
  };
}
