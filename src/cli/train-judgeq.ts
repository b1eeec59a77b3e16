import { basename, join, resolve } from 'node:path';
import { KvevictError } from '../errors.js';
import { defaultModelDir, repoRoot } from '../paths.js';
import { writeJudgeqCard } from '../train/judgeq/card.js';
import { DEFAULT_RECIPE, trainJudgeq } from '../train/judgeq/train.js';
import { formatHelp, parseArgs, requireString, checkOutputPath, type OptionSpecs } from './args.js';

export const summary = "train Judge Q soft tokens for a model (its own responses' attention as the target)";

const d = DEFAULT_RECIPE;
const specs: OptionSpecs = {
  model: { type: 'string', help: 'model folder', default: defaultModelDir },
  out: { type: 'string', help: 'soft-token file to write (.safetensors)' },
  'soft-tokens': { type: 'int', help: 'number of soft tokens m', default: d.softTokens },
  steps: { type: 'int', help: 'optimizer steps', default: d.steps },
  lr: { type: 'number', help: 'peak learning rate (AdamW, warm-up then cosine decay)', default: d.lr },
  batch: { type: 'int', help: 'prompts per step', default: d.batch },
  seed: { type: 'int', help: 'seed of the prompts, their order and the initial soft tokens', default: d.seed },
  resume: { type: 'boolean', help: 'continue from the run folder checkpoint' },
  force: { type: 'boolean', help: 'start over in a run folder that already holds a checkpoint (it is overwritten)' },
  prompts: { type: 'int', help: 'training prompts (each paired with the model greedy response, cached)', default: d.trainPrompts },
  'held-out': { type: 'int', help: 'held-out prompts for the held-out loss', default: d.heldOutPrompts },
  'min-length': { type: 'int', help: 'shortest context of a long-context prompt, in tokens', default: d.minLength },
  'max-length': { type: 'int', help: 'longest prompt, in tokens', default: d.maxLength },
  'max-response': { type: 'int', help: 'longest greedy response, in tokens', default: d.maxResponse },
  'init-from': { type: 'string', help: 'start from the soft tokens in this file (e.g. trained for an earlier checkpoint of the model)' },
  'length-weight': { type: 'boolean', help: "weigh each prompt's loss by (L / 1024)^2, so long prompts count as much as short ones" },
  warmup: { type: 'int', help: 'warm-up steps', default: d.warmup },
  'eval-every': { type: 'int', help: 'held-out loss every N steps', default: 25 },
  'checkpoint-every': { type: 'int', help: 'checkpoint every N steps', default: 10 },
  'time-limit': { type: 'int', help: 'stop after this many seconds (checkpointed, file written); 0 = none', default: 0 },
  'run-dir': { type: 'string', help: 'folder of the response cache, checkpoint, log and loss curve (default runs/judgeq-<out name>)' },
  quiet: { type: 'boolean', help: 'no progress output' },
  card: { type: 'boolean', help: 'after training, evaluate and write JUDGEQ.md and the loss curve beside --out' },
  'card-held-out': { type: 'int', help: 'card: held-out prompts for the oracle hit rates', default: 48 },
  'card-budgets': { type: 'list', help: 'card: budgets', default: '64,128,256' },
  'card-ruler-samples': { type: 'int', help: 'card: RULER cases per task', default: 3 },
  'card-needle-lengths': { type: 'list', help: 'card: needle haystack lengths', default: '1024,2048,3584' },
  'no-benchmarks': { type: 'boolean', help: 'card: leave out the needle and RULER runs' },
  help: { type: 'boolean', help: 'show this help' },
};

const USAGE =
  'kvevict train-judgeq [--model DIR] --out FILE.safetensors [--soft-tokens 32] [--steps N] [--lr X] [--batch N] [--seed S] [--resume]';

export async function run(argv: string[]): Promise<number> {
  const { options: o, positionals } = parseArgs(argv, specs, 'train-judgeq');
  if (o.help) {
    process.stdout.write(formatHelp(USAGE, specs) + '\n');
    return 0;
  }
  if (positionals.length) throw new KvevictError(`train-judgeq: unexpected argument "${positionals[0]}"`);
  const out = checkOutputPath(requireString(o, 'out', 'train-judgeq'), 'file', 'train-judgeq: --out');
  if (!out.endsWith('.safetensors')) throw new KvevictError(`train-judgeq: --out ${out} must end in .safetensors`);
  const num = (k: string) => o[k] as number;
  for (const k of ['eval-every', 'checkpoint-every'])
    if (!Number.isInteger(num(k)) || num(k) < 1) throw new KvevictError(`train-judgeq: --${k} must be an integer >= 1`);
  if (num('time-limit') < 0) throw new KvevictError('train-judgeq: --time-limit must be >= 0');
  const runDir =
    typeof o['run-dir'] === 'string' ? resolve(o['run-dir']) : join(repoRoot, 'runs', `judgeq-${basename(out, '.safetensors')}`);
  const r = trainJudgeq({
    modelDir: requireString(o, 'model', 'train-judgeq'),
    out,
    runDir,
    resume: o.resume === true,
    force: o.force === true,
    softTokens: num('soft-tokens'),
    steps: num('steps'),
    lr: num('lr'),
    warmup: num('warmup'),
    minLrRatio: d.minLrRatio,
    batch: num('batch'),
    seed: num('seed'),
    trainPrompts: num('prompts'),
    heldOutPrompts: num('held-out'),
    minLength: num('min-length'),
    maxLength: num('max-length'),
    maxResponse: num('max-response'),
    lengthWeight: o['length-weight'] === true,
    initFrom: typeof o['init-from'] === 'string' ? resolve(o['init-from']) : null,
    evalEvery: num('eval-every'),
    checkpointEvery: num('checkpoint-every'),
    timeLimit: num('time-limit'),
    quiet: o.quiet === true,
  });
  if (o.card) {
    const ints = (k: string) =>
      (typeof o[k] === 'string' ? (o[k] as string).split(',') : (o[k] as string[])).map((x) => {
        const n = Number(x);
        if (!Number.isInteger(n) || n < 1) throw new KvevictError(`train-judgeq: --${k} takes positive integers, got "${x}"`);
        return n;
      });
    const card = await writeJudgeqCard({
      modelDir: requireString(o, 'model', 'train-judgeq'),
      softFile: out,
      runDir,
      heldOut: num('card-held-out'),
      budgets: ints('card-budgets'),
      benchmarks: o['no-benchmarks'] !== true,
      rulerSamples: num('card-ruler-samples'),
      needleLengths: ints('card-needle-lengths'),
      progress: process.stderr,
    });
    process.stderr.write(`train-judgeq: wrote ${card}${r.complete ? '' : ' (training not complete)'}\n`);
  }
  return 0;
}
