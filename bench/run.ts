/**
 * `npm run bench`: runs every bench/<name>.ts module that exports `runBench(): Promise<object>` (kernels first,
 * then the others by name), lets each print its tables, and writes its result to bench/results/<name>.json
 * together with the date and the machine. Arguments filter modules by name: `node dist/bench/run.js kernels`.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { repoRoot } from '../src/paths.js';
import { loadNative, nativeAddonPath } from '../src/kernels/index.js';
import { loadNativeAddon } from '../src/kernels/native.js';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  /** OPENBLAS_CORETYPE as the kernels loaded it (they set SkylakeX on AVX-512 CPUs unless it was given) */
  openblasCoretype: string | null;
  /** the core OpenBLAS says it runs on */
  openblasCore: string | null;
  openblasThreads: string | null;
  backend: string | null;
  /** 1-minute load average when the module started: other work on the machine skews timings */
  loadAverage: number;
}

export function machineInfo(load = loadavg()[0]): MachineInfo {
  const list = cpus();
  let openblasCore: string | null = null;
  try {
    if (loadNative()) openblasCore = loadNativeAddon(nativeAddonPath).info().corename;
  } catch {
    // not built: the TypeScript kernels run
  }
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    openblasCoretype: process.env.OPENBLAS_CORETYPE ?? null,
    openblasCore,
    openblasThreads: process.env.OPENBLAS_NUM_THREADS ?? null,
    backend: process.env.KVEVICT_BACKEND ?? null,
    loadAverage: Math.round(load * 100) / 100,
  };
}

type BenchModule = { runBench?: () => Promise<object> };

/** Compiled bench modules beside this file, kernels first. */
function benchNames(dir: string): string[] {
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.js') && f !== 'run.js')
    .map((f) => basename(f, '.js'))
    .sort();
  return [...names.filter((n) => n === 'kernels'), ...names.filter((n) => n !== 'kernels')];
}

async function main(filters: string[]): Promise<number> {
  const dir = dirname(fileURLToPath(import.meta.url));
  const outDir = join(repoRoot, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  let ran = 0, failed = 0;
  for (const name of benchNames(dir)) {
    if (filters.length > 0 && !filters.includes(name)) continue;
    const mod = (await import(pathToFileURL(join(dir, `${name}.js`)).href)) as BenchModule;
    if (typeof mod.runBench !== 'function') continue; // helpers such as table.js
    process.stdout.write(`\n=== bench ${name} ===\n`);
    const started = new Date();
    const load = loadavg()[0];
    try {
      const result = await mod.runBench();
      const seconds = (Date.now() - started.getTime()) / 1000;
      // machine info after the run: the kernels' loader sets the OpenBLAS variables on first use
      const record = { name, date: started.toISOString(), seconds, machine: machineInfo(load), result };
      const file = join(outDir, `${name}.json`);
      writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
      process.stdout.write(`(${seconds.toFixed(1)} s; wrote ${file})\n`);
      ran++;
    } catch (e) {
      failed++;
      process.stdout.write(`bench ${name} failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    }
  }
  if (ran + failed === 0) {
    process.stderr.write(`no bench module matched ${filters.join(', ') || '(any)'} in ${dir}\n`);
    return 1;
  }
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
