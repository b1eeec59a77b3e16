import { KvevictError } from '../errors.js';
import { DATASET_FORMS } from '../eval/datasets/index.js';
import { runEvalJob } from '../eval/setup.js';
import { MODES, makeGrid, parseBudgets, parseMode, parsePress } from '../eval/settings.js';
import { formatTable, jsonSummary } from '../eval/summary.js';
import { defaultModelDir } from '../paths.js';
import { pressHelp, withModelFiles } from '../press/registry.js';
import { requireString, checkOutputPath, type OptionSpecs, commandOptions } from './args.js';
import { KV_DTYPE_OPTION_SPECS, kvDtypeFromCli } from './kv-dtype.js';

export const summary = 'run a grid of methods x budgets over a dataset; resumable, JSONL rows, summary table';

const specs: OptionSpecs = {
  dataset: { type: 'list', help: `what to evaluate: ${DATASET_FORMS} (several, comma-separated)` },
  model: { type: 'string', help: 'model folder', default: defaultModelDir },
  press: { type: 'list', help: 'methods NAME[:key=value...], comma-separated (e.g. full,snapkv:window=64; methods below)' },
  budget: { type: 'list', help: 'entries kept per KV head per layer, comma-separated' },
  mode: { type: 'list', help: `${MODES.join(' or ')} (both, comma-separated)`, default: 'query-aware' },
  samples: { type: 'int', help: 'cases per dataset (first N; RULER tasks: N generated per length)' },
  seed: { type: 'int', help: 'seed of generated datasets', default: 0 },
  out: { type: 'string', help: 'results folder: OUT/results.jsonl (finished rows are skipped on a rerun)' },
  json: { type: 'boolean', help: 'print {"rows": [{press, budget, mode, score, n, ci95}]} instead of the table' },
  lengths: { type: 'list', help: 'niah: haystack lengths in tokens; ruler:<task>: lengths (default: the model context)' },
  depths: { type: 'list', help: 'niah: needle depths in percent (default 0,25,50,75,100)' },
  needle: { type: 'string', help: 'niah: your own needle sentence (with --question)' },
  question: { type: 'string', help: 'niah: the question about --needle' },
  'qa-file': { type: 'string', help: 'ruler:qa_1 / qa_2: SQuAD v2 / HotpotQA JSON file' },
  'max-new-tokens': {
    type: 'int',
    help: "answer length in tokens for every case, instead of each dataset's own (e.g. 64 for plain JSONL)",
  },
  'no-fidelity': { type: 'boolean', help: 'skip the fidelity measures (no full-cache run unless --press has full)' },
  'chunk-compress': {
    type: 'int',
    help: 'every method compresses its prompt chunk by chunk, N tokens at a time (rows key on it: use its own --out)',
  },
  ...KV_DTYPE_OPTION_SPECS,
  help: { type: 'boolean', help: 'show this help' },
};

const USAGE =
  'kvevict eval --dataset (niah | ruler:<task> | longbench:<file> | FILE.jsonl) [--model DIR] --press LIST --budget LIST [--mode query-aware|query-agnostic] [--samples N] [--seed S] --out DIR [--json]';

function numbers(items: string[] | undefined, name: string): number[] | undefined {
  if (!items) return undefined;
  return items.map((s) => {
    const n = Number(s);
    if (!Number.isFinite(n) || s.trim() === '') throw new KvevictError(`eval: --${name} takes numbers, got "${s}"`);
    return n;
  });
}

function chunkCompressOf(n: number | undefined): number | undefined {
  if (n === undefined) return undefined;
  if (!Number.isInteger(n) || n < 1) throw new KvevictError(`eval: --chunk-compress must be an integer >= 1, got ${n}`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const options = commandOptions(argv, specs, 'eval', USAGE, { more: pressHelp() });
  if (!options) return 0;
  const datasets = options.dataset as string[] | undefined;
  if (!datasets) throw new KvevictError('eval: --dataset is required');
  const presses = (options.press as string[] | undefined)?.map((p) => withModelFiles(parsePress(p), options.model as string));
  if (!presses) throw new KvevictError('eval: --press is required (e.g. --press full,snapkv,laq)');
  const budgetList = options.budget as string[] | undefined;
  if (!budgetList) throw new KvevictError('eval: --budget is required (e.g. --budget 64,128)');
  const modeItems = typeof options.mode === 'string' ? [options.mode] : (options.mode as string[]);
  const grid = makeGrid(
    presses,
    parseBudgets(budgetList),
    modeItems.map((m) => parseMode(m)),
  );
  const out = checkOutputPath(requireString(options, 'out', 'eval'), 'folder', 'eval: --out');
  const needle = options.needle as string | undefined;
  const question = options.question as string | undefined;
  if ((needle === undefined) !== (question === undefined)) throw new KvevictError('eval: --needle and --question go together');
  const samples = options.samples as number | undefined;
  if (samples !== undefined && samples < 1) throw new KvevictError(`eval: --samples must be >= 1, got ${samples}`);
  const lengths = numbers(options.lengths as string[] | undefined, 'lengths');
  if (lengths?.some((l) => !Number.isInteger(l) || l < 1)) throw new KvevictError('eval: --lengths must be positive integers');

  const maxNewTokens = options['max-new-tokens'] as number | undefined;
  if (maxNewTokens !== undefined && maxNewTokens < 1) throw new KvevictError(`eval: --max-new-tokens must be >= 1, got ${maxNewTokens}`);
  const { results } = await runEvalJob({
    maxNewTokens,
    datasets,
    grid,
    outDir: out,
    modelDir: options.model as string,
    samples,
    seed: options.seed as number,
    lengths,
    depths: numbers(options.depths as string[] | undefined, 'depths'),
    needle: needle !== undefined && question !== undefined ? { needle, question } : undefined,
    qaFile: options['qa-file'] as string | undefined,
    fidelity: !options['no-fidelity'],
    chunkCompress: chunkCompressOf(options['chunk-compress'] as number | undefined),
    kvDtype: kvDtypeFromCli(options, 'eval'),
    progress: process.stderr,
    log: process.stderr,
  });
  const rows = results.flatMap((r) => r.rows);
  if (options.json) process.stdout.write(JSON.stringify(jsonSummary(rows)) + '\n');
  else process.stdout.write(formatTable(rows) + '\n');
  const failed = results.reduce((a, r) => a + r.failed, 0);
  if (failed > 0) process.stderr.write(`kvevict: ${failed} row(s) failed (see the lines above); rerun to retry them\n`);
  return rows.length === 0 ? 1 : 0;
}
