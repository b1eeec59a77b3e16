/**
 * The decode step's attention alone, f16 cache against f32: SmolLM2-135M's 30 layers x 3 KV heads (group 3,
 * head_dim 64), one query row against N cached keys per head, on the native kernels' threads. Reports ms a step
 * and GB/s of cache read against one sgemv streaming 512 MB of f32 or f16 weights (bench/kernels.ts's stream,
 * on 4 KB pages as the cache is: the memory ceiling of a pass that reads each byte once). `node dist/bench/attention.js [N ...]` (default 8192 and 32768);
 * `--addon A.node,B.node` times two builds of the addon in one process, alternating (an A/B of a kernel change).
 */
import { fileURLToPath } from 'node:url';
import { loadNative } from '../src/kernels/index.js';
import { makeNativeKernels } from '../src/kernels/native.js';
import type { CacheRows, Kernels } from '../src/kernels/types.js';
import { Rng } from '../src/util/rng.js';
import { runAndRecord } from './record.js';
import { benchStream } from './kernels.js';
import { formatTable } from './table.js';

const LAYERS = 30,
  KV_HEADS = 3,
  GROUP = 3,
  HEAD_DIM = 64;
const ROUNDS = 7;

interface AttentionRun {
  addon: string;
  round: number;
  context: number;
  kvDtype: 'f32' | 'f16';
  /** best and median of ROUNDS steps (every layer and head once) */
  bestMs: number;
  medianMs: number;
  cacheGBps: number;
}

function heads(k: Kernels, n: number, half: boolean, rng: Rng): { keys: CacheRows; values: CacheRows }[] {
  return Array.from({ length: LAYERS * KV_HEADS }, () => {
    const make = (): CacheRows => {
      const f = rng.normalArray(n * HEAD_DIM, 1);
      if (!half) return f;
      const h = new Uint16Array(n * HEAD_DIM);
      k.floatToHalf(f, h, f.length);
      return h;
    };
    return { keys: make(), values: make() };
  });
}

function timeSteps(k: Kernels, addon: string, round: number, n: number, half: boolean): AttentionRun {
  const rng = new Rng(half ? 2 : 1);
  const cache = heads(k, n, half, rng);
  const q = rng.normalArray(GROUP * HEAD_DIM, 1),
    out = new Float32Array(GROUP * HEAD_DIM);
  const qPos = Int32Array.of(n),
    kPos = Int32Array.from({ length: n }, (_, i) => i);
  const step = () => {
    for (const h of cache)
      k.attendHead({
        q,
        qRowStride: GROUP * HEAD_DIM,
        out,
        rows: 1,
        headDim: HEAD_DIM,
        firstHead: 0,
        group: GROUP,
        qPos,
        keys: h.keys,
        values: h.values,
        kPos,
        n,
        scale: 1 / Math.sqrt(HEAD_DIM),
      });
  };
  step();
  const ms: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t = performance.now();
    step();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  const bytes = LAYERS * KV_HEADS * 2 * n * HEAD_DIM * (half ? 2 : 4);
  return {
    addon,
    round,
    context: n,
    kvDtype: half ? 'f16' : 'f32',
    bestMs: ms[0],
    medianMs: ms[ROUNDS >> 1],
    cacheGBps: bytes / ms[ROUNDS >> 1] / 1e6,
  };
}

export async function runBench(contexts = [8192, 32768], addons: string[] = []): Promise<object> {
  const builds = addons.length ? addons.map((path) => ({ name: path, k: makeNativeKernels(path) })) : [{ name: 'built', k: loadNative() }];
  if (builds.some((b) => !b.k)) throw new Error('the native addon is not built: run node scripts/build-native.js');
  const runs: AttentionRun[] = [];
  // f32 and f16 (and the builds) alternate, so all meet the same moments of a shared machine
  for (let round = 0; round < (addons.length ? 3 : 1); round++)
    for (const n of contexts) for (const b of builds) for (const half of [false, true]) runs.push(timeSteps(b.k!, b.name, round, n, half));
  const stream = benchStream(builds[0].k!, new Rng(3));
  const ceiling = (r: AttentionRun) => (r.kvDtype === 'f16' ? stream.f16GBps : stream.f32GBps);
  process.stdout.write(
    formatTable(
      `decode attention alone: ${LAYERS} layers x ${KV_HEADS} KV heads, group ${GROUP}, head_dim ${HEAD_DIM}, one query row; sgemv streams f32 weights at ${stream.f32GBps.toFixed(1)} GB/s, f16 at ${stream.f16GBps.toFixed(1)}`,
      ['addon', 'context', 'kv', 'best ms', 'median ms', 'GB/s', 'of stream', 'x f32 (median)'],
      runs.map((r) => {
        const f32 = runs.find((x) => x.addon === r.addon && x.round === r.round && x.context === r.context && x.kvDtype === 'f32')!;
        return [r.addon, r.context, r.kvDtype, r.bestMs, r.medianMs, r.cacheGBps, r.cacheGBps / ceiling(r), f32.medianMs / r.medianMs];
      }),
    ) + '\n',
  );
  return { layers: LAYERS, kvHeads: KV_HEADS, group: GROUP, headDim: HEAD_DIM, rounds: ROUNDS, stream, runs };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const wanted = args.map(Number).filter((n) => Number.isInteger(n) && n > 0);
  const addons = args.includes('--addon') ? args[args.indexOf('--addon') + 1].split(',') : [];
  await runAndRecord('attention', () => runBench(wanted.length ? wanted : undefined, addons));
}
