import { resolve } from 'node:path';
import { requireString, checkOutputPath, type OptionSpecs, commandOptions } from './args.js';
import { KvevictError } from '../errors.js';
import { DEFAULT_PRETRAIN, TINY_PRETRAIN, pretrain, type PretrainOptions } from '../train/pretrain.js';
import { MIXES, TINY_CURRICULUM, type CurriculumStage } from '../train/data/batch.js';
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { defaultModelDir, repoRoot } from '../paths.js';
import { DEFAULT_REF_EVAL, evaluateReference, refEvalTables, writeRefEval } from '../train/ref-eval.js';
import { DEFAULT_CARD_EVAL, cardTables, evaluateCard } from '../train/card-eval.js';
import { vocabByName } from '../train/data/vocab.js';
import type { DType } from '../model/safetensors.js';

export const summary = 'train the reference model (checkpoints, resumable, loss curve)';

const D = DEFAULT_PRETRAIN;
const SPECS: OptionSpecs = {
  out: { type: 'string', help: 'run folder: checkpoint.bin, log.jsonl, loss.svg and the model files' },
  export: { type: 'string', help: 'also write the model (and loss.svg) here at each evaluation, e.g. models/kvevict-ref' },
  'init-from': { type: 'string', help: "start from this model folder's weights (fine-tuning; same shape as the run)" },
  resume: { type: 'boolean', help: 'continue from DIR/checkpoint.bin (same data order as an uninterrupted run)' },
  'continue-from': {
    type: 'string',
    help: 'when --out has no checkpoint: go on from a folder exported by this run (weights and train-state.json; optimizer moments restart)',
  },
  force: { type: 'boolean', help: 'start over in a run folder that already holds a checkpoint (it is overwritten)' },
  seed: { type: 'int', help: 'seed of the initial weights and the data order', default: D.seed },
  steps: { type: 'int', help: 'optimizer steps (the cosine schedule ends here)', default: D.steps },
  'tokens-per-step': { type: 'int', help: 'tokens per batch', default: D.tokensPerStep },
  lr: { type: 'number', help: 'peak learning rate (AdamW)', default: D.lr },
  warmup: { type: 'int', help: 'linear warm-up steps', default: D.warmup },
  'lr-restart': { type: 'int', help: 'restart the schedule (warm-up, cosine to --steps) at this step; 0: never', default: 0 },
  'lr-restart-peak': { type: 'number', help: 'peak learning rate of the restarted schedule (default: --lr)', default: 0 },
  clip: { type: 'number', help: 'gradient clipping: max global L2 norm', default: D.clip },
  hidden: { type: 'int', help: 'hidden size', default: D.hidden },
  layers: { type: 'int', help: 'decoder layers', default: D.layers },
  heads: { type: 'int', help: 'query heads', default: D.heads },
  'kv-heads': { type: 'int', help: 'key/value heads (GQA)', default: D.kvHeads },
  intermediate: { type: 'int', help: 'SwiGLU intermediate size', default: D.intermediate },
  'rope-theta': { type: 'number', help: 'RoPE base', default: D.ropeTheta },
  'max-positions': { type: 'int', help: 'max_position_embeddings', default: D.maxPositions },
  vocab: { type: 'string', help: "vocabulary: bytes, or smollm2:SIZE (SmolLM2's BPE cut to its first SIZE ids)", default: D.vocab },
  'export-dtype': {
    type: 'string',
    help: 'dtype of the exported model.safetensors: F32, F16 or BF16 (checkpoints stay float32)',
    default: D.exportDtype,
  },
  'max-length': { type: 'int', help: 'longest training sequence in tokens (caps the curriculum)', default: D.maxLength },
  'eval-every': { type: 'int', help: 'held-out needle evaluation every N steps (0: never)', default: D.evalEvery },
  'eval-lengths': { type: 'list', help: 'needle evaluation lengths during training', default: D.evalLengths.join(',') },
  'checkpoint-every': { type: 'int', help: 'checkpoint every N steps', default: D.checkpointEvery },
  'stop-after': {
    type: 'int',
    help: 'stop after this step (checkpointed, evaluated, exported) although the schedule runs to --steps; 0: never',
    default: 0,
  },
  'time-limit': { type: 'number', help: 'stop after this many minutes, checkpointed (0: none)', default: 0 },
  evaluate: { type: 'boolean', help: 'instead of training: held-out evaluation of --model with greedy decoding (the model card figures)' },
  suite: {
    type: 'string',
    help: "with --evaluate: targets (needle 1K-8K at every depth, RULER's 11 tasks at 4K and 8K against StreamingLLM 10%, perplexity; resumable rows in runs/heldout-NAME) or card (the byte-level model's card)",
    default: 'targets',
  },
  'ruler-lengths': { type: 'list', help: 'with --suite targets: RULER lengths', default: DEFAULT_REF_EVAL.rulerLengths.join(',') },
  'ruler-samples': { type: 'int', help: 'with --suite targets: cases per RULER task and length', default: DEFAULT_REF_EVAL.rulerSamples },
  'needle-lengths': { type: 'list', help: 'with --suite targets: needle lengths', default: DEFAULT_REF_EVAL.needleLengths.join(',') },
  model: { type: 'string', help: 'model folder for --evaluate (default: the embedded reference model)' },
  'eval-out': { type: 'string', help: 'JSON file for --evaluate results (default MODEL/heldout-eval.json)' },
  'card-lengths': { type: 'list', help: 'needle prompt lengths for --evaluate', default: DEFAULT_CARD_EVAL.lengths.join(',') },
  'per-task': { type: 'int', help: 'samples per synthetic task for --evaluate', default: DEFAULT_CARD_EVAL.perTask },
  curriculum: {
    type: 'string',
    help: 'sequence lengths (and task mix) by progress, "UNTIL:LEN,LEN[@MIX];UNTIL:LEN..." (progress 0..1, MIX default, copy, retrieve or lookup; default 0.05:256;0.6:128,256@copy;0.7:256,512;0.8:512,1024;0.93:1024,2048;1.01:2048,4096)',
  },
  tiny: { type: 'boolean', help: 'a tiny model and short sequences (seconds; for tests and smoke runs)' },
  help: { type: 'boolean', help: 'show this help' },
};

/** "0.3:256,512;1.01:1024" -> stages */
export function parseCurriculum(text: string): CurriculumStage[] {
  const stages = text
    .split(';')
    .filter((x) => x.trim())
    .map((part) => {
      const [until, rest] = part.split(':');
      const [lengths, mix] = (rest ?? '').split('@');
      const stage: CurriculumStage = { until: Number(until), lengths: lengths.split(',').map(Number), ...(mix ? { mix } : {}) };
      if (mix && !(mix in MIXES))
        throw new KvevictError(`pretrain: --curriculum mix "${mix}" is not one of ${Object.keys(MIXES).join(', ')}`);
      if (!(stage.until > 0) || stage.lengths.length === 0 || stage.lengths.some((l) => !Number.isInteger(l) || l <= 0)) {
        throw new KvevictError(
          `pretrain: --curriculum stage "${part}" must be UNTIL:LEN[,LEN...] with UNTIL in (0, 1.01] and positive lengths`,
        );
      }
      return stage;
    });
  if (stages.length === 0) throw new KvevictError('pretrain: --curriculum is empty');
  return stages;
}

function exportDtype(v: string): DType {
  const d = v.toUpperCase();
  if (d !== 'F32' && d !== 'F16' && d !== 'BF16') throw new KvevictError(`pretrain: --export-dtype must be F32, F16 or BF16, got "${v}"`);
  return d;
}

function int(o: Record<string, unknown>, k: string): number {
  return o[k] as number;
}

export async function run(argv: string[]): Promise<number> {
  const o = commandOptions(argv, SPECS, 'pretrain', 'kvevict pretrain --out DIR [--resume] [--seed S] [--steps N] [options]');
  if (!o) return 0;
  if (o.evaluate && o.suite !== 'card') {
    if (o.suite !== 'targets') throw new KvevictError(`pretrain: --suite must be targets or card, got "${String(o.suite)}"`);
    const dir = resolve(typeof o.model === 'string' ? o.model : defaultModelDir);
    const ints = (k: string) => {
      const xs = String(o[k]).split(',').map(Number);
      if (xs.some((l) => !Number.isInteger(l) || l <= 0)) throw new KvevictError(`pretrain: --${k} must be positive integers`);
      return xs;
    };
    const out = resolve(repoRoot, 'runs', `heldout-${basename(dir)}`);
    const result = await evaluateReference(dir, {
      ...DEFAULT_REF_EVAL,
      needleLengths: ints('needle-lengths'),
      rulerLengths: ints('ruler-lengths'),
      rulerSamples: int(o, 'ruler-samples'),
      out,
      progress: process.stderr,
      log: process.stderr,
    });
    const file =
      typeof o['eval-out'] === 'string' ? checkOutputPath(o['eval-out'], 'file', 'pretrain: --eval-out') : join(dir, 'heldout-eval.json');
    writeRefEval(file, result);
    process.stdout.write(refEvalTables(result) + `\n(${result.seconds.toFixed(0)} s; rows in ${out}; written to ${file})\n`);
    return 0;
  }
  if (o.evaluate) {
    const dir = resolve(typeof o.model === 'string' ? o.model : defaultModelDir);
    const lengths = String(o['card-lengths']).split(',').map(Number);
    if (lengths.some((l) => !Number.isInteger(l) || l <= 0)) throw new KvevictError('pretrain: --card-lengths must be positive integers');
    const result = await evaluateCard(dir, {
      ...DEFAULT_CARD_EVAL,
      lengths,
      perTask: int(o, 'per-task'),
      log: (l) => process.stderr.write(l + '\n'),
    });
    const file =
      typeof o['eval-out'] === 'string' ? checkOutputPath(o['eval-out'], 'file', 'pretrain: --eval-out') : join(dir, 'heldout-eval.json');
    writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
    process.stdout.write(cardTables(result) + `\n(${result.seconds.toFixed(0)} s; written to ${file})\n`);
    return 0;
  }
  const out = checkOutputPath(requireString(o, 'out', 'pretrain'), 'folder', 'pretrain: --out');
  const given = (k: string) => argv.some((a) => a === `--${k}` || a.startsWith(`--${k}=`));
  const opts: PretrainOptions = {
    ...DEFAULT_PRETRAIN,
    out,
    exportDir: typeof o.export === 'string' ? checkOutputPath(o.export, 'folder', 'pretrain: --export') : null,
    seed: int(o, 'seed'),
    steps: int(o, 'steps'),
    tokensPerStep: int(o, 'tokens-per-step'),
    lr: o.lr as number,
    warmup: int(o, 'warmup'),
    clip: o.clip as number,
    hidden: int(o, 'hidden'),
    layers: int(o, 'layers'),
    heads: int(o, 'heads'),
    kvHeads: int(o, 'kv-heads'),
    intermediate: int(o, 'intermediate'),
    ropeTheta: o['rope-theta'] as number,
    maxPositions: int(o, 'max-positions'),
    maxLength: int(o, 'max-length'),
    evalEvery: int(o, 'eval-every'),
    evalLengths: ((o['eval-lengths'] as string[] | string | undefined) ? String(o['eval-lengths']).split(',') : []).map(Number),
    initFrom: typeof o['init-from'] === 'string' ? resolve(o['init-from']) : null,
    force: o.force === true,
    continueFrom: typeof o['continue-from'] === 'string' ? resolve(o['continue-from']) : null,
    vocab: String(o.vocab),
    exportDtype: exportDtype(String(o['export-dtype'])),
    checkpointEvery: int(o, 'checkpoint-every'),
    lrRestart: int(o, 'lr-restart'),
    lrRestartPeak: o['lr-restart-peak'] as number,
    timeLimit: (o['time-limit'] as number) * 60,
    stopAfter: int(o, 'stop-after'),
  };
  if (o.tiny) {
    for (const [k, v] of Object.entries(TINY_PRETRAIN)) {
      const flag = k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()).replace('kv-heads', 'kv-heads');
      if (!given(flag)) (opts as unknown as Record<string, unknown>)[k] = v;
    }
    opts.curriculum = TINY_CURRICULUM;
  }
  for (const [k, v] of Object.entries({
    steps: opts.steps,
    'tokens-per-step': opts.tokensPerStep,
    hidden: opts.hidden,
    layers: opts.layers,
    heads: opts.heads,
    'kv-heads': opts.kvHeads,
  })) {
    if (!(v > 0)) throw new KvevictError(`pretrain: --${k} must be positive, got ${v}`);
  }
  if (!(opts.lrRestartPeak >= 0)) throw new KvevictError(`pretrain: --lr-restart-peak must be >= 0, got ${opts.lrRestartPeak}`);
  if (typeof o.curriculum === 'string') opts.curriculum = parseCurriculum(o.curriculum);
  vocabByName(opts.vocab);
  if (opts.evalLengths.some((l) => !Number.isInteger(l) || l <= 0))
    throw new KvevictError(`pretrain: --eval-lengths must be positive integers`);
  const result = await pretrain(opts, o.resume === true);
  process.stdout.write(
    `pretrain: loss ${result.firstLoss.toFixed(3)} -> ${result.finalLoss.toFixed(3)}; model in ${opts.exportDir ?? out}\n`,
  );
  return 0;
}
