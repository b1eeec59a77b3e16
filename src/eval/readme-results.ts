import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { demoPressesFor } from './demo.js';
import { defaultModelDir } from '../paths.js';
import { withModelFiles } from '../press/registry.js';
import { writeReport } from './report/index.js';
import type { ResultRow } from './results.js';
import { loadEngine, runEvalJob, type EvalJob } from './setup.js';
import { MODES, makeGrid, parsePress } from './settings.js';
import { formatMarkdownFocus, formatMarkdownPivot } from './summary.js';
import type { TextSink } from './progress.js';

/** The README's results grid: every method at budgets 64..512, both modes, needle + RULER + LongBench on the embedded model. */
export const README_BUDGETS = [64, 128, 256, 512];
export const README_RULER_TASKS = ['ruler:niah_single_2', 'ruler:niah_multikey_1', 'ruler:niah_multivalue', 'ruler:vt', 'ruler:fwe'];

/** The methods of the focus table: the two query-looking-ahead methods and their baseline. */
export const FOCUS_PRESSES = ['full', 'snapkv', 'laq', 'laq++', 'judgeq', 'judgeq+laq', 'judgeq+window'];

export interface ReadmeResultsOptions {
  /** results folder (resumable) */
  out: string;
  /** report folder, committed under docs/ */
  report: string;
  /** the Markdown file (docs/results.md) to update between <!-- results:start --> and <!-- results:end --> (when the markers are there) */
  doc?: string;
  modelDir?: string;
  /** a much smaller grid, to try the script */
  quick?: boolean;
  progress: TextSink;
  log: TextSink;
}

const START = '<!-- results:start -->';
const END = '<!-- results:end -->';

/** Run (or resume) the README grid, write the report and the Markdown tables; returns the Markdown. */
export async function readmeResults(o: ReadmeResultsOptions): Promise<string> {
  const modelDir = o.modelDir ?? defaultModelDir;
  const loaded = loadEngine(modelDir);
  const presses = o.quick ? ['full', 'streaming', 'snapkv', 'laq'] : demoPressesFor(modelDir);
  const grid = makeGrid(
    presses.map((p) => withModelFiles(parsePress(p), modelDir)),
    o.quick ? [64, 128] : README_BUDGETS,
    [...MODES],
  );
  const base = { grid, outDir: o.out, seed: 0, progress: o.progress, log: o.log, modelDir: o.modelDir };
  const jobs: EvalJob[] = [
    { ...base, datasets: ['niah'], depths: o.quick ? [0, 100] : [0, 25, 50, 75, 100], ...(o.quick ? { lengths: [1024] } : {}) },
    { ...base, datasets: o.quick ? README_RULER_TASKS.slice(0, 1) : README_RULER_TASKS, samples: o.quick ? 1 : 4 },
    { ...base, datasets: ['longbench:multi_news'], samples: o.quick ? 1 : 4 },
  ];
  // the rows of this grid only: a folder may also hold rows of older settings (a retrained file, another model)
  const rows: ResultRow[] = [];
  for (const job of jobs) rows.push(...(await runEvalJob(job, loaded)).results.flatMap((r) => r.rows));
  await writeReport(o.out, o.report);
  const md = [
    `Model \`${loaded.engine.model}\`; ${rows.length} result rows. Mean score (0 to 100) over every case of every task:`,
    '',
    formatMarkdownPivot(rows, 'score'),
    '',
    "Oracle hit rate (%): overlap of each KV head's kept set with the top entries by the attention of the tokens the full cache really decodes:",
    '',
    formatMarkdownPivot(
      rows.filter((r) => r.press !== 'full'),
      'oracle_hit',
    ),
    '',
    "Attention recall (%): share of those real queries' attention that falls on kept entries:",
    '',
    formatMarkdownPivot(
      rows.filter((r) => r.press !== 'full'),
      'attention_recall',
    ),
    '',
    'Lookahead (LAQ) and trained (Judge Q) queries against SnapKV, by benchmark family (mean score, and the oracle hit rate):',
    '',
    formatMarkdownFocus(rows, FOCUS_PRESSES, [64, 128, 256]),
    '',
  ].join('\n');
  mkdirSync(o.report, { recursive: true });
  writeFileSync(join(o.report, 'results.md'), md);
  if (o.doc && existsSync(o.doc)) {
    const text = readFileSync(o.doc, 'utf8');
    const a = text.indexOf(START);
    const b = text.indexOf(END);
    if (a >= 0 && b > a) writeFileSync(o.doc, `${text.slice(0, a + START.length)}\n${md}\n${text.slice(b)}`);
  }
  return md;
}
