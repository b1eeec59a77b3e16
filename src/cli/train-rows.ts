import { basename, join, resolve } from 'node:path';
import { KvevictError } from '../errors.js';
import { defaultModelDir, repoRoot } from '../paths.js';
/**
 * `kvevict train-judgeq` and `kvevict train-lookaheadkv`: one trainer (rows appended after the prompt, the
 * model frozen, its own answers' attention as the target), two things trained; the options are shared.
 */
import { parseLoraTargets } from '../press/queries/lookahead-adapter-file.js';
import { writeJudgeqCard } from '../train/judgeq/card.js';
import {
  DEFAULT_LOOKAHEADKV_RECIPE,
  DEFAULT_RECIPE,
  toolOf,
  trainJudgeq,
  trainLookaheadkv,
  type TrainedKind,
} from '../train/judgeq/train.js';
import { requireString, checkOutputPath, type OptionSpecs, commandOptions } from './args.js';

export const SUMMARIES: Record<TrainedKind, string> = {
  judgeq: "train Judge Q soft tokens for a model (its own responses' attention as the target)",
  lookaheadkv: "train LookaheadKV lookahead tokens and their LoRA for a model (its own responses' attention as the target)",
};

function specsOf(kind: TrainedKind): OptionSpecs {
  const d = kind === 'lookaheadkv' ? DEFAULT_LOOKAHEADKV_RECIPE : DEFAULT_RECIPE;
  const rows: OptionSpecs =
    kind === 'lookaheadkv'
      ? {
          out: { type: 'string', help: 'LookaheadKV file to write (.safetensors)' },
          'lookahead-tokens': { type: 'int', help: 'number of lookahead tokens m', default: d.softTokens },
          'lora-rank': { type: 'int', help: 'LoRA rank r', default: DEFAULT_LOOKAHEADKV_RECIPE.loraRank },
          'lora-alpha': {
            type: 'number',
            help: 'LoRA alpha (the update is alpha / r . B A)',
            default: DEFAULT_LOOKAHEADKV_RECIPE.loraAlpha,
          },
          'lora-targets': {
            type: 'string',
            help: 'linear layers with LoRA, of q,k,v,o,gate,up,down',
            default: DEFAULT_LOOKAHEADKV_RECIPE.loraTargets.join(','),
          },
        }
      : {
          out: { type: 'string', help: 'soft-token file to write (.safetensors)' },
          'soft-tokens': { type: 'int', help: 'number of soft tokens m', default: d.softTokens },
        };
  return {
    model: { type: 'string', help: 'model folder', default: defaultModelDir },
    ...rows,
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
    'init-from': {
      type: 'string',
      help: `start from the ${kind === 'lookaheadkv' ? 'modules' : 'soft tokens'} in this file (e.g. trained for an earlier checkpoint of the model)`,
    },
    'length-weight': { type: 'boolean', help: "weigh each prompt's loss by (L / 1024)^2, so long prompts count as much as short ones" },
    warmup: { type: 'int', help: 'warm-up steps', default: d.warmup },
    'eval-every': { type: 'int', help: 'held-out loss every N steps', default: 25 },
    'checkpoint-every': { type: 'int', help: 'checkpoint every N steps', default: 10 },
    'time-limit': { type: 'int', help: 'stop after this many seconds (checkpointed, file written); 0 = none', default: 0 },
    'run-dir': { type: 'string', help: `folder of the response cache, checkpoint, log and loss curve (default runs/${kind}-<out name>)` },
    quiet: { type: 'boolean', help: 'no progress output' },
    card: {
      type: 'boolean',
      help: `after training, evaluate and write ${kind === 'lookaheadkv' ? 'LOOKAHEADKV.md' : 'JUDGEQ.md'} and the loss curve beside --out`,
    },
    'card-held-out': { type: 'int', help: 'card: held-out prompts for the oracle hit rates', default: 48 },
    'card-budgets': { type: 'list', help: 'card: budgets', default: '64,128,256' },
    'card-ruler-samples': { type: 'int', help: 'card: RULER cases per task', default: 3 },
    'card-needle-lengths': { type: 'list', help: 'card: needle haystack lengths', default: '1024,2048,3584' },
    'no-benchmarks': { type: 'boolean', help: 'card: leave out the needle and RULER runs' },
    help: { type: 'boolean', help: 'show this help' },
  };
}

/** The command's `run` for one kind. */
export async function runTrainer(kind: TrainedKind, argv: string[]): Promise<number> {
  const tool = toolOf(kind);
  const specs = specsOf(kind);
  const rowsFlag = kind === 'lookaheadkv' ? 'lookahead-tokens' : 'soft-tokens';
  const usage = `kvevict ${tool} [--model DIR] --out FILE.safetensors [--${rowsFlag} 32] [--steps N] [--lr X] [--batch N] [--seed S] [--resume]`;
  const o = commandOptions(argv, specs, tool, usage);
  if (!o) return 0;
  const out = checkOutputPath(requireString(o, 'out', tool), 'file', `${tool}: --out`);
  if (!out.endsWith('.safetensors')) throw new KvevictError(`${tool}: --out ${out} must end in .safetensors`);
  const num = (k: string) => o[k] as number;
  for (const k of ['eval-every', 'checkpoint-every'])
    if (!Number.isInteger(num(k)) || num(k) < 1) throw new KvevictError(`${tool}: --${k} must be an integer >= 1`);
  if (num('time-limit') < 0) throw new KvevictError(`${tool}: --time-limit must be >= 0`);
  const runDir =
    typeof o['run-dir'] === 'string' ? resolve(o['run-dir']) : join(repoRoot, 'runs', `${kind}-${basename(out, '.safetensors')}`);
  const d = kind === 'lookaheadkv' ? DEFAULT_LOOKAHEADKV_RECIPE : DEFAULT_RECIPE;
  const lora =
    kind === 'lookaheadkv'
      ? {
          loraRank: num('lora-rank'),
          loraAlpha: num('lora-alpha'),
          loraTargets: parseLoraTargets(o['lora-targets'] as string, `${tool}: --lora-targets`),
        }
      : {};
  const train = kind === 'lookaheadkv' ? trainLookaheadkv : trainJudgeq;
  const r = train({
    ...lora,
    modelDir: requireString(o, 'model', tool),
    out,
    runDir,
    resume: o.resume === true,
    force: o.force === true,
    softTokens: num(rowsFlag),
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
        if (!Number.isInteger(n) || n < 1) throw new KvevictError(`${tool}: --${k} takes positive integers, got "${x}"`);
        return n;
      });
    const card = await writeJudgeqCard({
      kind,
      modelDir: requireString(o, 'model', tool),
      softFile: out,
      runDir,
      heldOut: num('card-held-out'),
      budgets: ints('card-budgets'),
      benchmarks: o['no-benchmarks'] !== true,
      rulerSamples: num('card-ruler-samples'),
      needleLengths: ints('card-needle-lengths'),
      progress: process.stderr,
    });
    process.stderr.write(`${tool}: wrote ${card}${r.complete ? '' : ' (training not complete)'}\n`);
  }
  return 0;
}
