#!/usr/bin/env node
// Two results folders of the same grid compared case by case: per method, mode and budget, the mean score
// difference (A - B) with its 95% interval, and the share of cases whose answers are identical.
//   node scripts/compare-runs.mjs A B [LABEL]
// What bounded memory costs: A a folder made with `bash scripts/field-results.sh OUT LIST "--chunk-compress N"`,
// B scripts/field-results.sh's default folder (the defaults: runs/field-chunked against runs/field).
// What the f16 cache costs: the same eval with --kv-dtype f16 (A) and --kv-dtype f32 (B).
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist', 'src', 'eval');
const { readRows } = await import(pathToFileURL(join(dist, 'results.js')).href);
const { pairedDifference } = await import(pathToFileURL(join(dist, 'stats.js')).href);
const a = readRows(process.argv[2] ?? join(root, 'runs', 'field-chunked'));
const b = readRows(process.argv[3] ?? join(root, 'runs', 'field'));
const label = process.argv[4] ?? 'chunked - one-shot';
const budgets = [...new Set(a.map((r) => r.budget))].sort((x, y) => x - y);
const pick = (rows, press, mode, budget) => rows.filter((r) => r.press === press && r.mode === mode && r.budget === budget);
const byCase = (rows, f) => new Map(rows.map((r) => [`${r.dataset}/${r.case}`, f(r)]));
const fmt = (d) =>
  d ? `${d.mean >= 0 ? '+' : ''}${d.mean.toFixed(1)} [${d.ci95[0].toFixed(1)}, ${d.ci95[1].toFixed(1)}] (n=${d.n})` : '-';
/** share of the cases in both whose predictions are the same text */
const same = (ra, rb) => {
  const pb = byCase(rb, (r) => r.prediction);
  const both = ra.filter((r) => pb.has(`${r.dataset}/${r.case}`));
  return both.length
    ? `${Math.round((100 * both.filter((r) => pb.get(`${r.dataset}/${r.case}`) === r.prediction).length) / both.length)}%`
    : '-';
};
const lines = [`| ${label} | mode | ${budgets.map((x) => `B=${x}`).join(' | ')} |`, `|---|---|${budgets.map(() => '---:').join('|')}|`];
for (const mode of ['query-agnostic', 'query-aware'])
  for (const press of [...new Set(a.map((r) => r.press))])
    lines.push(
      `| ${press} | ${mode} | ${budgets
        .map((x) => {
          const ra = pick(a, press, mode, x),
            rb = pick(b, press, mode, x);
          return `${fmt(
            pairedDifference(
              byCase(ra, (r) => r.score),
              byCase(rb, (r) => r.score),
            ),
          )}, same ${same(ra, rb)}`;
        })
        .join(' | ')} |`,
    );
const peak = a.filter((r) => r.press !== 'full' && r.peak_cache_bytes).map((r) => r.peak_cache_bytes / r.full_cache_bytes);
process.stdout.write(
  `${a.length} rows against ${b.length}\n\n${lines.join('\n')}\n` +
    (peak.length ? `\npeak cache / full cache: median ${peak.sort((x, y) => x - y)[peak.length >> 1]?.toFixed(3)}\n` : ''),
);
