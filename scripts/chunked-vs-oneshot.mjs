#!/usr/bin/env node
// What bounded memory costs: each method compressed chunk by chunk (a folder made with
// `bash scripts/field-results.sh OUT LIST "--chunk-compress N"`) against the same method compressed in one shot
// (scripts/field-results.sh's default folder), on the same cases: mean score difference with its 95% interval.
//   node scripts/chunked-vs-oneshot.mjs [runs/field-chunked] [runs/field]
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist', 'src', 'eval');
const { readRows } = await import(pathToFileURL(join(dist, 'results.js')).href);
const { pairedDifference } = await import(pathToFileURL(join(dist, 'stats.js')).href);
const chunked = readRows(process.argv[2] ?? join(root, 'runs', 'field-chunked'));
const oneShot = readRows(process.argv[3] ?? join(root, 'runs', 'field'));
const budgets = [...new Set(chunked.map((r) => r.budget))].sort((a, b) => a - b);
const scores = (rows, press, mode, budget) =>
  new Map(rows.filter((r) => r.press === press && r.mode === mode && r.budget === budget).map((r) => [`${r.dataset}/${r.case}`, r.score]));
const fmt = (d) =>
  d ? `${d.mean >= 0 ? '+' : ''}${d.mean.toFixed(1)} [${d.ci95[0].toFixed(1)}, ${d.ci95[1].toFixed(1)}] (n=${d.n})` : '-';
const lines = [
  `| chunked - one-shot | mode | ${budgets.map((b) => `B=${b}`).join(' | ')} |`,
  `|---|---|${budgets.map(() => '---:').join('|')}|`,
];
for (const mode of ['query-agnostic', 'query-aware'])
  for (const press of [...new Set(chunked.map((r) => r.press))].filter((p) => p !== 'full'))
    lines.push(
      `| ${press} | ${mode} | ${budgets.map((b) => fmt(pairedDifference(scores(chunked, press, mode, b), scores(oneShot, press, mode, b)))).join(' | ')} |`,
    );
const peak = chunked.filter((r) => r.press !== 'full' && r.peak_cache_bytes).map((r) => r.peak_cache_bytes / r.full_cache_bytes);
process.stdout.write(
  `${chunked.length} chunked rows\n\n${lines.join('\n')}\n\npeak cache / full cache: median ${peak.sort((a, b) => a - b)[peak.length >> 1]?.toFixed(3)}\n`,
);
