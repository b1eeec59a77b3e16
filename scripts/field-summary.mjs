#!/usr/bin/env node
// The tables of docs/results.md "The newer methods beside LAQ, Judge Q and LookaheadKV" from a results folder
// made by scripts/field-results.sh: mean score with its 95% bootstrap interval per method, mode and budget, and
// each method against SnapKV on the same cases; --by-length adds both tables for each generated prompt length.
//   node scripts/field-summary.mjs [runs/field[,MORE FOLDERS]] [METHODS against snapkv] [--by-length]
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist', 'src', 'eval');
const { readRows } = await import(pathToFileURL(join(dist, 'results.js')).href);
const { formatMarkdownPivot, formatMarkdownPaired, withoutFileOptions } = await import(pathToFileURL(join(dist, 'summary.js')).href);
// several folders (comma-separated) are read as one: a grid run in parts, one row per key
const folders = (process.argv[2] ?? join(root, 'runs', 'field')).split(',');
const byKey = new Map(folders.flatMap((f) => readRows(f)).map((r) => [r.key, r]));
const rows = withoutFileOptions([...byKey.values()]);
const others = process.argv[3]?.split(',') ?? [
  'laq',
  'judgeq',
  'lookaheadkv',
  'chunkkv',
  'criticalkv',
  'defensivekv',
  'layer-defensivekv',
  'kvzip',
];
process.stdout.write(
  `${rows.length} rows\n\n${formatMarkdownPivot(rows, 'score', true)}\n\n${formatMarkdownPaired(rows, 'snapkv', others)}\n\n`,
);
process.stdout.write(
  `Oracle hit rate (%):\n\n${formatMarkdownPivot(
    rows.filter((r) => r.press !== 'full'),
    'oracle_hit',
  )}\n`,
);
if (process.argv.includes('--by-length')) {
  const lengths = [...new Set(rows.map((r) => r.meta?.length).filter((l) => l !== undefined))].sort((a, b) => a - b);
  for (const length of lengths) {
    const at = rows.filter((r) => r.meta?.length === length);
    process.stdout.write(
      `\n### ${length} tokens (${at.length} rows)\n\n${formatMarkdownPivot(at, 'score', true)}\n\n${formatMarkdownPaired(at, 'snapkv', others)}\n`,
    );
  }
}
