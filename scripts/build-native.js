#!/usr/bin/env node
// Builds the OpenBLAS kernels addon (native/*.c) into build/Release/kvevict_native.node with the system C
// compiler. Runs as the package's install script, so it never fails the install: when the compiler, the
// Node headers or OpenBLAS are missing it prints one warning line and exits 0 (the TypeScript kernels remain).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'native');
const outDir = join(root, 'build', 'Release');
const outFile = join(outDir, 'kvevict_native.node');
const hint = 'apt-get install gcc libopenblas-pthread-dev && npm rebuild';

function giveUp(why) {
  console.warn(`kvevict: native kernels not built (${why}); using the TypeScript kernels (${hint})`);
  process.exit(0);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim(), missing: r.error !== undefined };
}

function firstDir(candidates, file, mustContain) {
  for (const dir of candidates) {
    const p = join(dir, file);
    if (!existsSync(p)) continue;
    if (mustContain && !readFileSync(p, 'utf8').includes(mustContain)) continue;
    return dir;
  }
  return null;
}

if (process.env.KVEVICT_SKIP_NATIVE === '1') giveUp('KVEVICT_SKIP_NATIVE=1');
if (process.platform === 'win32') giveUp('Windows is not supported by the build script');

const cc = [process.env.CC, 'cc', 'gcc', 'clang'].find((c) => c && !run(c, ['--version']).missing);
if (!cc) giveUp('no C compiler found');

const nodeInclude = firstDir(
  [
    process.env.KVEVICT_NODE_HEADERS,
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean),
  'node_api.h',
);
if (!nodeInclude) giveUp('Node headers (node_api.h) not found');

// OpenBLAS's own cblas.h declares openblas_get_corename; a reference-BLAS cblas.h does not.
const pc = run('pkg-config', ['--cflags-only-I', 'openblas']);
const pcDirs = pc.ok
  ? pc.out
      .split(/\s+/)
      .filter((f) => f.startsWith('-I'))
      .map((f) => f.slice(2))
  : [];
const blasInclude = firstDir(
  [
    ...pcDirs,
    '/usr/include/x86_64-linux-gnu/openblas-pthread',
    '/usr/include/aarch64-linux-gnu/openblas-pthread',
    '/usr/include/openblas',
    '/usr/local/include/openblas',
    '/opt/homebrew/opt/openblas/include',
    '/usr/local/opt/openblas/include',
    '/usr/include',
    '/usr/local/include',
  ],
  'cblas.h',
  'openblas_get_corename',
);
if (!blasInclude) giveUp('OpenBLAS headers (cblas.h) not found');
const pcLibs = run('pkg-config', ['--libs-only-L', 'openblas']);
const libDirs = pcLibs.ok ? pcLibs.out.split(/\s+/).filter((f) => f.startsWith('-L')) : [];

const sources = readdirSync(srcDir)
  .filter((f) => f.endsWith('.c'))
  .map((f) => join(srcDir, f));
if (sources.length === 0) giveUp(`no C sources in ${srcDir}`);
mkdirSync(outDir, { recursive: true });
const tmp = join(outDir, `kvevict_native.${process.pid}.tmp.node`);

const base = [
  '-std=c11',
  '-O3',
  '-ffp-contract=fast',
  '-fPIC',
  '-shared',
  '-pthread',
  '-Wall',
  '-fvisibility=hidden',
  `-I${nodeInclude}`,
  `-I${blasInclude}`,
  `-I${srcDir}`,
  ...sources,
  ...libDirs,
  '-lopenblas',
  '-lm',
  '-o',
  tmp,
];
if (process.platform === 'darwin') base.push('-undefined', 'dynamic_lookup');
// -march=native: the addon is built on the machine that runs it; retry portable only if the compiler refuses that
// flag (an error in the sources must not leave a build without the vector paths that passes the tests anyway).
let built = run(cc, ['-march=native', ...base]);
if (!built.ok && /march/.test(built.out)) built = run(cc, base);
if (!built.ok) {
  rmSync(tmp, { force: true });
  const firstError = built.out.split('\n').find((l) => /error/i.test(l)) ?? built.out.split('\n')[0];
  giveUp(`${cc} failed: ${firstError}`);
}

// Load it in a child process before installing it, so a broken link (e.g. no libopenblas.so.0) is caught here.
const probe = spawnSync(process.execPath, ['-e', `const m = require(${JSON.stringify(tmp)}); process.stdout.write(m.info().corename)`], {
  encoding: 'utf8',
  env: { ...process.env, OPENBLAS_NUM_THREADS: '1' },
});
if (probe.status !== 0) {
  rmSync(tmp, { force: true });
  giveUp(`built addon does not load: ${(probe.stderr || '').trim().split('\n')[0]}`);
}
renameSync(tmp, outFile);
console.log(`kvevict: built native kernels (OpenBLAS ${probe.stdout}) into ${outFile}`);
