#!/usr/bin/env node
// The results of docs/results.md: every method at budgets 64, 128, 256 and 512, both modes, on the embedded model
// (needle grid, five RULER tasks, LongBench multi_news). Resumable: rerun to continue. Writes the report to
// docs/report/ (index.html, charts as SVG and PNG, results.md) and updates docs/results.md between
// <!-- results:start --> and <!-- results:end -->.
//   node scripts/readme-results.js [--quick] [--out runs/readme] [--report docs/report] [--model DIR]
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = process.env.KVEVICT_DIST ?? join(root, 'dist');
const mod = join(dist, 'src', 'eval', 'readme-results.js');
if (!existsSync(mod)) {
  console.error(`${mod} is missing: run "npm run build" first`);
  process.exit(2);
}
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const { readmeResults } = await import(pathToFileURL(mod).href);
const { KvevictError } = await import(pathToFileURL(join(dist, 'src', 'errors.js')).href);
const started = Date.now();
try {
  const md = await readmeResults({
    out: opt('out', join(root, 'runs', 'readme')),
    report: opt('report', join(root, 'docs', 'report')),
    doc: join(root, 'docs', 'results.md'),
    modelDir: opt('model', undefined),
    quick: args.includes('--quick'),
    progress: process.stderr,
    log: process.stderr,
  });
  process.stdout.write(md);
  // the grid's own run time (rows already in --out are not run again, so a resumed run counts only its part)
  process.stderr.write(`readme-results: ${((Date.now() - started) / 60000).toFixed(1)} min on this run\n`);
} catch (e) {
  if (e instanceof KvevictError) {
    console.error(`kvevict: ${e.message}`);
    process.exit(2);
  }
  throw e;
}
