import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../../src/paths.js';

/** dist/test (or another build's test folder): the build this test file belongs to. */
const buildDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const mainJs = join(buildDir, 'src', 'cli', 'main.js');

/**
 * Run the CLI in a child process on the TypeScript kernels: bin/kvevict.js when this is the default build,
 * else this build's main.js.
 */
export function cli(args: string[]): { status: number; stdout: string; stderr: string } {
  const useBin = buildDir === join(repoRoot, 'dist') && existsSync(join(repoRoot, 'bin', 'kvevict.js'));
  const argv = useBin
    ? [join(repoRoot, 'bin', 'kvevict.js'), ...args]
    : // a placeholder first argument: node itself would take a leading "inspect" for its debugger
      [
        '--input-type=module',
        '-e',
        `const { run } = await import(${JSON.stringify(mainJs)}); process.exitCode = await run(process.argv.slice(2));`,
        'kvevict',
        ...args,
      ];
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, KVEVICT_BACKEND: 'js' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `{ model: dir, budget: 24, json: true }` as `--model dir --budget 24 --json` (false and undefined left out). */
export function flags(options: Record<string, string | number | boolean | undefined>): string[] {
  return Object.entries(options).flatMap(([name, v]) =>
    v === undefined || v === false ? [] : v === true ? [`--${name}`] : [`--${name}`, String(v)],
  );
}
