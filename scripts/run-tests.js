#!/usr/bin/env node
// Runs every compiled test file with node's own test runner; extra arguments filter by substring.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
const files = walk('dist/test')
  .sort()
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files found under dist/test (run npm run build first)');
  process.exit(1);
}
// the native kernels' suites skip themselves without the addon: say so where nobody can miss it
const { loadNative, nativeAddonPath } = await import('../dist/src/kernels/index.js');
if (!loadNative())
  console.error(
    `\n*** the native addon is not built (${nativeAddonPath}): its test suites are SKIPPED; run node scripts/build-native.js ***\n`,
  );
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
