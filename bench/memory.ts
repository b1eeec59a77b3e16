/**
 * Memory benchmark: SmolLM2-135M exact shapes (random weights, positions extended), prompts of 2K, 8K and 16K
 * tokens (more as arguments): the full cache, one-shot SnapKV at budget 256, and SnapKV compressed chunk by
 * chunk (chunks of 2,048), each in its own process so that the peak resident memory is its own. Per run: peak
 * RSS, the process's RSS once the model is built, the cache's own peak and final bytes, prefill tokens/s. The
 * yardstick is the full cache in the same run. Writes a chart (SVG and PNG) to docs/benchmarks-memory.{svg,png}.
 * Targets: chunked peak cache within 2x of (budget + chunk) entries per head at every length; the chunked
 * prefill at least 0.8x the one-shot prefill's throughput at the longest length.
 *
 * Standalone: node dist/bench/memory.js [CONTEXT...]
 * One run (what the parent spawns): node dist/bench/memory.js --one CONTEXT full|snapkv|snapkv-chunked
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prefillAndCompress } from '../src/generate/pipeline.js';
import { LlamaModel } from '../src/model/llama.js';
import { repoRoot } from '../src/paths.js';
import { makePress } from '../src/press/index.js';
import { renderSvg, svgToPng } from '../src/eval/report/render.js';
import { Rng } from '../src/util/rng.js';
import { randomWeights, smolConfig } from '../test/helpers/random-model.js';
import { formatTable } from './table.js';

const CONTEXTS = [2048, 8192, 16384];
const BUDGET = 256;
const CHUNK = 2048;
const CONFIGS = ['full', 'snapkv', 'snapkv-chunked'] as const;
type Config = (typeof CONFIGS)[number];

export interface MemoryRun {
  context: number;
  config: Config;
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

async function one(context: number, config: Config): Promise<MemoryRun> {
  const cfg = smolConfig({ max_position_embeddings: Math.max(8192, context + 16) });
  const model = new LlamaModel(cfg, randomWeights(cfg, 1, 0.05));
  const rng = new Rng(7);
  const tokens = Int32Array.from({ length: context }, () => 3 + rng.int(cfg.vocabSize - 3));
  const modelRssBytes = process.memoryUsage().rss;
  const press = config === 'full' ? null : makePress('snapkv', { budget: BUDGET });
  const t0 = performance.now();
  const ctx = await prefillAndCompress(model, tokens, press, config === 'snapkv-chunked' ? { chunkCompress: CHUNK } : {});
  const seconds = (performance.now() - t0) / 1000;
  const entry = cfg.numLayers * cfg.numKvHeads * (2 * cfg.headDim * 4 + 4);
  return {
    context,
    config,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    modelRssBytes,
    peakCacheBytes: ctx.cache.peakBytes,
    finalCacheBytes: ctx.cacheBytes,
    prefillTokPerS: context / seconds,
    boundBytes: (BUDGET + CHUNK) * entry,
  };
}

export interface MemoryBenchResult {
  model: string;
  budget: number;
  chunk: number;
  runs: MemoryRun[];
}

export async function runBench(contexts: number[] = CONTEXTS): Promise<MemoryBenchResult> {
  const self = fileURLToPath(import.meta.url);
  const runs: MemoryRun[] = [];
  for (const context of contexts)
    for (const config of CONFIGS) {
      const r = spawnSync(process.execPath, [self, '--one', String(context), config], { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (r.status !== 0) throw new Error(`memory bench ${context} ${config} failed: ${r.stderr}`);
      runs.push(JSON.parse(r.stdout.trim().split('\n').pop()!) as MemoryRun);
      process.stderr.write(`  ${context} ${config} done\n`);
    }
  const mib = (b: number) => b / 2 ** 20;
  process.stdout.write(
    formatTable(
      `Memory (SmolLM2-135M shapes, f32 cache, SnapKV budget ${BUDGET}, chunks of ${CHUNK}; the full cache is the yardstick)`,
      ['context', 'run', 'peak RSS MiB', 'model RSS MiB', 'peak cache MiB', 'final cache MiB', 'prefill tok/s', 'x full tok/s'],
      runs.map((r) => {
        const full = runs.find((x) => x.context === r.context && x.config === 'full')!;
        return [
          r.context,
          r.config,
          mib(r.peakRssBytes),
          mib(r.modelRssBytes),
          mib(r.peakCacheBytes),
          mib(r.finalCacheBytes),
          r.prefillTokPerS,
          r.prefillTokPerS / full.prefillTokPerS,
        ];
      }),
    ),
  );
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Peak KV-cache bytes (SmolLM2-135M shapes, budget ${BUDGET}, chunks of ${CHUNK})`,
    width: 420,
    height: 260,
    data: { values: runs.map((r) => ({ context: r.context, run: r.config, MiB: mib(r.peakCacheBytes) })) },
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
  return { model: 'SmolLM2-135M shapes (random weights)', budget: BUDGET, chunk: CHUNK, runs };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  if (args[0] === '--one') {
    process.stdout.write(JSON.stringify(await one(Number(args[1]), args[2] as Config)) + '\n');
  } else {
    const { writeBenchRecord } = await import('./record.js');
    const started = new Date();
    const result = await runBench(args.length ? args.map(Number) : CONTEXTS);
    writeBenchRecord('memory', started, 0, result);
  }
}
