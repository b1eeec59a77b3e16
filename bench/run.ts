/**
 * `npm run bench`: runs every bench/<name>.ts module that exports `runBench(): Promise<object>` (kernels first,
 * then the others by name), lets each print its tables, and writes its result to bench/results/<name>.json
 * together with the date and the machine. Arguments filter modules by name: `node dist/bench/run.js kernels`.
 */
import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeBenchRecord } from './record.js';

type BenchModule = { runBench?: () => Promise<object> };

/** Compiled bench modules beside this file, kernels first. */
function benchNames(dir: string): string[] {
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.js') && f !== 'run.js' && f !== 'record.js')
    .map((f) => basename(f, '.js'))
    .sort();
  return [...names.filter((n) => n === 'kernels'), ...names.filter((n) => n !== 'kernels')];
}

async function main(filters: string[]): Promise<number> {
  const dir = dirname(fileURLToPath(import.meta.url));
  let ran = 0,
    failed = 0;
  for (const name of benchNames(dir)) {
    if (filters.length > 0 && !filters.includes(name)) continue;
    const mod = (await import(pathToFileURL(join(dir, `${name}.js`)).href)) as BenchModule;
    if (typeof mod.runBench !== 'function') continue; // helpers such as table.js
    process.stdout.write(`\n=== bench ${name} ===\n`);
    const started = new Date();
    const load = loadavg()[0];
    try {
      const result = await mod.runBench();
      const file = writeBenchRecord(name, started, load, result);
      process.stdout.write(`(${((Date.now() - started.getTime()) / 1000).toFixed(1)} s; wrote ${file})\n`);
      ran++;
    } catch (e) {
      failed++;
      process.stdout.write(`bench ${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    }
  }
  if (ran + failed === 0) {
    process.stderr.write(`no bench module matched ${filters.join(', ') || '(any)'} in ${dir}\n`);
    return 1;
  }
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
