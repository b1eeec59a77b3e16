/**
 * The record every benchmark writes to bench/results/<name>.json: its name, start date, duration, the machine
 * (load average when it started included) and its result. Shared by `npm run bench` and the standalone runs.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
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
  /** whether bf16 weights' prefill products ran on vdpbf16ps (native/bgemm.c: built for it and timed faster here) */
  bf16Dot: boolean | null;
  /** 1-minute load average when the module started: other work on the machine skews timings */
  loadAverage: number;
}

export function machineInfo(load = loadavg()[0]): MachineInfo {
  const list = cpus();
  let openblasCore: string | null = null;
  let bf16Dot: boolean | null = null;
  try {
    if (loadNative()) {
      const info = loadNativeAddon(nativeAddonPath).info();
      openblasCore = info.corename;
      bf16Dot = info.bf16Dot === undefined ? null : info.bf16Dot === 1;
    }
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
    bf16Dot,
    loadAverage: Math.round(load * 100) / 100,
  };
}

/** Write `result` as bench/results/<name>.json; returns the file. */
export function writeBenchRecord(name: string, started: Date, load: number, result: object): string {
  const seconds = (Date.now() - started.getTime()) / 1000;
  // machine info after the run: the kernels' loader sets the OpenBLAS variables on first use
  const record = { name, date: started.toISOString(), seconds, machine: machineInfo(load), result };
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
  return file;
}

/** Run `fn` and write its record (the standalone entry points of the benchmark modules). */
export async function runAndRecord(name: string, fn: () => Promise<object>): Promise<void> {
  const started = new Date();
  const load = loadavg()[0];
  const result = await fn();
  process.stdout.write(`wrote ${writeBenchRecord(name, started, load, result)}\n`);
}

/**
 * This process's peak resident memory in bytes: Linux's VmHWM, the high-water mark of its own address space.
 * (getrusage's maxRSS is not: a child spawned by a large process starts from the parent's RSS at the fork.)
 */
export function peakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: the rusage figure
  }
  return process.resourceUsage().maxRSS * 1024;
}
