/**
 * Memory benchmark: SmolLM2-135M exact shapes (random weights, positions extended), prompts of 2K, 8K, 32K and
 * 64K tokens (others as arguments): the full cache, one-shot SnapKV at budget 256, and SnapKV compressed chunk by
 * chunk (chunks of 2,048), each with an f32 and an f16 cache, each in its own process so that the peak resident
 * memory is its own. Per run: peak RSS, the process's RSS once the model is built, the cache's own peak and final
 * bytes, prefill tokens/s. The yardstick is the full cache of the same dtype in the same run. From 32K on the
 * one-shot SnapKV run is left out: its prefill and its peak are the full cache's (the 2K and 8K rows show it),
 * and a full-attention prefill there takes many minutes; past 32K the full cache is not run either (its row is
 * its size by arithmetic).
 * Decode: one row per step against a full cache of 8K and 32K entries (filled with random keys and values: a
 * step's cost does not depend on them), f32 against f16 cache, with f32 and f16 weights: tokens/s.
 * Writes a chart (SVG and PNG) to docs/benchmarks-memory.{svg,png}.
 * Targets: chunked peak cache within 2x of (budget + chunk) entries per head at every length; the chunked
 * prefill at least 0.8x the one-shot prefill's throughput at 32K; the f16 cache's decode at 8K at least 1.3x
 * the f32 cache's.
 *
 * Standalone: node dist/bench/memory.js [CONTEXT...]
 * One run (what the parent spawns): node dist/bench/memory.js --one CONTEXT full|snapkv|snapkv-chunked f32|f16
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KV_DTYPES, tokenCacheBytes, type KvDtype } from '../src/cache/kv-cache.js';
import { prefillAndCompress } from '../src/generate/pipeline.js';
import { LlamaModel, type WeightFormat } from '../src/model/llama.js';
import { repoRoot } from '../src/paths.js';
import { makePress } from '../src/press/index.js';
import { renderSvg, svgToPng } from '../src/eval/report/render.js';
import { Rng } from '../src/util/rng.js';
import { randomWeights, smolConfig } from '../test/helpers/random-model.js';
import { formatTable } from './table.js';
import { peakRssBytes } from './record.js';

const CONTEXTS = [2048, 8192, 32768, 65536];
/** past this length, the one-shot SnapKV run (the full cache's prefill and peak) is left out */
const ONE_SHOT_UP_TO = 8192;
/** past this length, the full-cache runs are not timed (a 64K full-attention prefill takes about 25 minutes on two
 * Zen 3 cores): their row gives the full cache's bytes, prompt x entry bytes, which every timed run matches */
const FULL_UP_TO = 32768;
const BUDGET = 256;
const CHUNK = 2048;
const CONFIGS = ['full', 'snapkv', 'snapkv-chunked'] as const;
type Config = (typeof CONFIGS)[number];
const DECODE_CONTEXTS = [8192, 32768];
const DECODE_STEPS = 48;
const RUNS_DIR = join(repoRoot, 'runs', 'bench-memory');

export interface MemoryRun {
  context: number;
  config: Config;
  kvDtype: KvDtype;
  /** not run (FULL_UP_TO): the bytes are the full cache's by arithmetic, the timings and RSS null */
  skipped?: boolean;
  /** the process's peak resident set, bytes */
  peakRssBytes: number;
  /** resident set once the model was built, before the prompt */
  modelRssBytes: number;
  peakCacheBytes: number;
  finalCacheBytes: number;
  prefillTokPerS: number;
  /** (budget + chunk) entries per head, in bytes: the chunked run's bound */
  boundBytes: number;
}

export interface DecodeRun {
  context: number;
  weights: WeightFormat;
  kvDtype: KvDtype;
  decodeTokPerS: number;
  cacheBytes: number;
}

function benchModel(context: number, weights: WeightFormat = 'f32'): LlamaModel {
  const cfg = smolConfig({ max_position_embeddings: Math.max(8192, context + 64) });
  return new LlamaModel(cfg, randomWeights(cfg, 1, 0.05), undefined, { weights });
}

async function one(context: number, config: Config, kvDtype: KvDtype): Promise<MemoryRun> {
  if (config === 'full' && context > FULL_UP_TO) {
    const cfg = smolConfig({ max_position_embeddings: context + 64 });
    const bytes = context * tokenCacheBytes(cfg, kvDtype);
    const boundBytes = (BUDGET + CHUNK) * tokenCacheBytes(cfg, kvDtype);
    const none = NaN;
    return {
      context,
      config,
      kvDtype,
      skipped: true,
      peakRssBytes: none,
      modelRssBytes: none,
      peakCacheBytes: bytes,
      finalCacheBytes: bytes,
      prefillTokPerS: none,
      boundBytes,
    };
  }
  const model = benchModel(context);
  const cfg = model.config;
  const rng = new Rng(7);
  const tokens = Int32Array.from({ length: context }, () => 3 + rng.int(cfg.vocabSize - 3));
  const modelRssBytes = process.memoryUsage().rss;
  const press = config === 'full' ? null : makePress('snapkv', { budget: BUDGET });
  const t0 = performance.now();
  const ctx = await prefillAndCompress(model, tokens, press, { kvDtype, ...(config === 'snapkv-chunked' ? { chunkCompress: CHUNK } : {}) });
  const seconds = (performance.now() - t0) / 1000;
  return {
    context,
    config,
    kvDtype,
    peakRssBytes: peakRssBytes(),
    modelRssBytes,
    peakCacheBytes: ctx.cache.peakBytes,
    finalCacheBytes: ctx.cacheBytes,
    prefillTokPerS: context / seconds,
    boundBytes: (BUDGET + CHUNK) * tokenCacheBytes(cfg, kvDtype),
  };
}

/** Decode steps against a full cache of `context` random entries. */
function decodeOne(context: number, weights: WeightFormat, kvDtype: KvDtype): DecodeRun {
  const model = benchModel(context, weights);
  const cfg = model.config;
  const { numKvHeads: Hkv, headDim: d } = cfg;
  const cache = model.newCache(kvDtype);
  const rng = new Rng(3);
  const block = 1024;
  const rows = Float32Array.from({ length: block * Hkv * d }, () => rng.normal());
  for (let s = 0; s < context; s += block) {
    const n = Math.min(block, context - s);
    const pos = Int32Array.from({ length: n }, (_, i) => s + i);
    for (const layer of cache.layers) for (let h = 0; h < Hkv; h++) layer[h].append(n, rows, rows, Hkv * d, h * d, pos, model.k);
  }
  for (const layer of cache.layers) for (const head of layer) head.reserve(DECODE_STEPS + 8);
  const step = (i: number) => model.forward({ tokens: Int32Array.of(5 + i), positions: Int32Array.of(context + i), cache });
  for (let i = 0; i < 4; i++) step(i); // warm-up: code paths, the cache touched once
  const t0 = performance.now();
  for (let i = 4; i < 4 + DECODE_STEPS; i++) step(i);
  const seconds = (performance.now() - t0) / 1000;
  return { context, weights, kvDtype, decodeTokPerS: DECODE_STEPS / seconds, cacheBytes: cache.bytes };
}

export interface MemoryBenchResult {
  model: string;
  budget: number;
  chunk: number;
  runs: MemoryRun[];
  decodes: DecodeRun[];
}

export async function runBench(contexts: number[] = CONTEXTS): Promise<MemoryBenchResult> {
  const self = fileURLToPath(import.meta.url);
  // every run's result is kept in RUNS_DIR as it finishes, so a stopped or failed bench resumes where it was
  // (delete the folder, or KVEVICT_BENCH_FRESH=1, to measure again)
  mkdirSync(RUNS_DIR, { recursive: true });
  const spawn = (args: string[]) => {
    const file = join(RUNS_DIR, `${args.join('-').replace(/^-+/, '')}.json`);
    if (existsSync(file) && process.env.KVEVICT_BENCH_FRESH !== '1') {
      process.stderr.write(`  ${args.slice(1).join(' ')}: kept from ${file}\n`);
      return JSON.parse(readFileSync(file, 'utf8')) as unknown;
    }
    const r = spawnSync(process.execPath, [self, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) throw new Error(`memory bench ${args.join(' ')} failed: ${r.stderr}`);
    const line = r.stdout.trim().split('\n').pop()!;
    writeFileSync(file, line + '\n');
    process.stderr.write(`  ${args.slice(1).join(' ')} done\n`);
    return JSON.parse(line) as unknown;
  };
  const runs: MemoryRun[] = [];
  for (const context of contexts)
    for (const config of CONFIGS)
      for (const kvDtype of KV_DTYPES) {
        if (config === 'snapkv' && context > ONE_SHOT_UP_TO) continue;
        runs.push(spawn(['--one', String(context), config, kvDtype]) as MemoryRun);
      }
  const decodes: DecodeRun[] = [];
  for (const context of DECODE_CONTEXTS)
    for (const weights of ['f32', 'f16'] as const)
      for (const kvDtype of KV_DTYPES) decodes.push(spawn(['--decode', String(context), weights, kvDtype]) as DecodeRun);
  const mib = (b: number) => b / 2 ** 20;
  process.stdout.write(
    formatTable(
      `Memory (SmolLM2-135M shapes, SnapKV budget ${BUDGET}, chunks of ${CHUNK}; the full cache of the same dtype is the yardstick)`,
      ['context', 'run', 'kv', 'peak RSS MiB', 'model RSS MiB', 'peak cache MiB', 'final cache MiB', 'prefill tok/s', 'x full tok/s'],
      runs.map((r) => {
        const full = runs.find((x) => x.context === r.context && x.config === 'full' && x.kvDtype === r.kvDtype)!;
        const timed = (x: number | null) => (r.skipped || x === null ? null : x);
        return [
          r.context,
          r.skipped ? `${r.config} (not run: its size)` : r.config,
          r.kvDtype,
          timed(r.peakRssBytes && mib(r.peakRssBytes)),
          timed(r.modelRssBytes && mib(r.modelRssBytes)),
          mib(r.peakCacheBytes),
          mib(r.finalCacheBytes),
          timed(r.prefillTokPerS),
          full.skipped ? null : timed(r.prefillTokPerS / full.prefillTokPerS),
        ];
      }),
    ) + '\n',
  );
  process.stdout.write(
    formatTable(
      `Decode against a full cache (SmolLM2-135M shapes, ${DECODE_STEPS} steps; the f32 cache with the same weights is the yardstick)`,
      ['context', 'weights', 'kv', 'cache MiB', 'decode tok/s', 'x f32 cache'],
      decodes.map((r) => {
        const base = decodes.find((x) => x.context === r.context && x.weights === r.weights && x.kvDtype === 'f32')!;
        return [r.context, r.weights, r.kvDtype, mib(r.cacheBytes), r.decodeTokPerS, r.decodeTokPerS / base.decodeTokPerS];
      }),
    ) + '\n',
  );
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Peak KV-cache bytes (SmolLM2-135M shapes, budget ${BUDGET}, chunks of ${CHUNK})`,
    width: 420,
    height: 260,
    data: { values: runs.map((r) => ({ context: r.context, run: `${r.config} ${r.kvDtype}`, MiB: mib(r.peakCacheBytes) })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'context', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'prompt tokens' },
      y: { field: 'MiB', type: 'quantitative', scale: { type: 'log' }, title: 'peak cache MiB' },
      color: { field: 'run', type: 'nominal' },
    },
    config: { font: 'DejaVu Sans' },
  };
  const svg = await renderSvg(spec as Parameters<typeof renderSvg>[0]);
  writeFileSync(join(repoRoot, 'docs', 'benchmarks-memory.svg'), svg);
  writeFileSync(join(repoRoot, 'docs', 'benchmarks-memory.png'), svgToPng(svg));
  return { model: 'SmolLM2-135M shapes (random weights)', budget: BUDGET, chunk: CHUNK, runs, decodes };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  if (args[0] === '--one') {
    process.stdout.write(JSON.stringify(await one(Number(args[1]), args[2] as Config, args[3] as KvDtype)) + '\n');
  } else if (args[0] === '--decode') {
    process.stdout.write(JSON.stringify(decodeOne(Number(args[1]), args[2] as WeightFormat, args[3] as KvDtype)) + '\n');
  } else {
    const { writeBenchRecord } = await import('./record.js');
    const started = new Date();
    const result = await runBench(args.length ? args.map(Number) : CONTEXTS);
    writeBenchRecord('memory', started, 0, result);
  }
}
