import { join } from 'node:path';
import { clearResults, demoJobs, demoPlan, demoPressesFor } from '../eval/demo.js';
import { writeReport } from '../eval/report/index.js';
import { loadEngine, runEvalJob } from '../eval/setup.js';
import { parseBudgets, parseMode } from '../eval/settings.js';
import { formatTable } from '../eval/summary.js';
import { defaultModelDir } from '../paths.js';
import { checkOutputPath, type OptionSpecs, commandOptions } from './args.js';

export const summary = 'the demo: needle + two RULER tasks, every method at two budgets, on the embedded model; table + report';

const specs: OptionSpecs = {
  out: { type: 'string', help: 'results folder (the report goes to OUT/report)', default: join('runs', 'demo') },
  model: { type: 'string', help: 'model folder', default: defaultModelDir },
  budget: { type: 'list', help: 'budgets', default: '64,128' },
  mode: { type: 'list', help: 'query-aware and/or query-agnostic', default: 'query-aware' },
  press: { type: 'list', help: 'methods (default: full, streaming, snapkv, pyramidkv, laq and every other method that can run)' },
  resume: { type: 'boolean', help: 'keep the rows of a previous demo in OUT (default: start afresh)' },
  help: { type: 'boolean', help: 'show this help' },
};

const USAGE = 'kvevict demo [--out DIR] [--model DIR] [--budget LIST] [--mode LIST] [--press LIST] [--resume]';

const list = (v: unknown): string[] => (typeof v === 'string' ? v.split(',') : (v as string[]));

export async function run(argv: string[]): Promise<number> {
  const options = commandOptions(argv, specs, 'demo', USAGE);
  if (!options) return 0;
  const out = checkOutputPath(options.out as string, 'folder', 'demo: --out');
  const model = options.model as string;
  const presses = options.press ? list(options.press) : demoPressesFor(model);
  const plan = demoPlan(
    parseBudgets(list(options.budget)),
    list(options.mode).map((m) => parseMode(m)),
    presses,
    model,
  );
  const t0 = performance.now();
  const loaded = loadEngine(model);
  if (!options.resume) clearResults(out);
  process.stderr.write(
    `kvevict demo: ${plan.datasets.join(', ')} x ${presses.length} methods x budgets ${list(options.budget).join(', ')} on ${loaded.engine.model} -> ${out}\n`,
  );
  const rows = [];
  for (const job of demoJobs(plan, out, { progress: process.stderr, log: process.stderr, modelDir: options.model as string, seed: 0 })) {
    const { results } = await runEvalJob(job, loaded);
    rows.push(...results.flatMap((r) => r.rows));
  }
  process.stdout.write(formatTable(rows) + '\n');
  const report = await writeReport(out, join(out, 'report'));
  process.stdout.write(`\nreport: ${report.html} (${report.charts.length} charts, also as SVG and PNG)\n`);
  process.stderr.write(`kvevict demo: done in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  return 0;
}
