import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../model/config.js';
import { KvevictError } from '../errors.js';
import { Tape } from '../autograd/tape.js';
import { beginBufferScope, endBufferScope } from '../autograd/buffers.js';
import { crossEntropy } from '../autograd/ops/cross-entropy.js';
import { kernels } from '../kernels/index.js';
import { AdamW, DEFAULT_ADAMW, clipGradNorm } from './adamw.js';
import { learningRate } from './schedule.js';
import { isCount, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { TrainModel } from './model.js';
import { countParams, initParams, namedParams, paramsFromWeights, type ModelParams } from './params.js';
import { loadCorpus, type Corpus } from './data/corpus.js';
import { vocabByName, type TrainVocab } from './data/vocab.js';
import type { DType } from '../model/safetensors.js';
import { DEFAULT_CURRICULUM, trainingBatch, type CurriculumStage } from './data/batch.js';
import { evaluateHeldOut, type HeldOutReport } from './evaluate.js';
import { exportModel } from './export.js';
import { ProgressBar, formatDuration } from './progress.js';
import { lineChartSvg } from './loss-svg.js';
import { loadConfig } from '../model/config.js';
import { loadWeights } from '../model/weights.js';

/** Everything that defines a pretraining run (a resumed run must use the same values). */
export interface PretrainOptions {
  out: string;
  /** also export the model here at each evaluation (the repository's model folder) */
  exportDir: string | null;
  seed: number;
  steps: number;
  tokensPerStep: number;
  lr: number;
  warmup: number;
  minLrRatio: number;
  clip: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  ropeTheta: number;
  maxPositions: number;
  /** longest training sequence (caps the curriculum) */
  maxLength: number;
  evalEvery: number;
  checkpointEvery: number;
  /** needle evaluation lengths during training */
  evalLengths: number[];
  /** restart the learning-rate schedule (warm-up, then cosine to the last step) at this step; 0 = never */
  lrRestart: number;
  /** peak learning rate of the restarted schedule (0: --lr) */
  lrRestartPeak: number;
  /** stop (after checkpointing) when this many seconds have passed in this process; 0 = no limit */
  timeLimit: number;
  /** stop (checkpointed, evaluated, exported) after this step although the schedule runs to `steps`; 0 = never */
  stopAfter?: number;
  curriculum: CurriculumStage[];
  /** start from this model folder's weights instead of a random initialisation (fine-tuning); a checkpoint still wins on --resume */
  initFrom?: string | null;
  /** start over in a run folder that already holds a checkpoint (without it such a folder is refused unless resumed) */
  force?: boolean;
  /**
   * continue a run from an exported model folder (weights and DIR/train-state.json: step, history) when the
   * run folder has no checkpoint: the committed, compact form of a long run. The optimizer's moments are not
   * stored there; they restart at zero under a short re-warm-up of the learning rate.
   */
  continueFrom?: string | null;
  /** the vocabulary (vocabByName): `bytes` or `smollm2:SIZE` */
  vocab: string;
  /** dtype of the exported model.safetensors (checkpoints stay float32) */
  exportDtype: DType;
}

/** The shape and schedule of `kvevict pretrain --tiny`: a model that trains in seconds (tests, examples). */
export const TINY_PRETRAIN = {
  hidden: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  intermediate: 64,
  maxLength: 128,
  maxPositions: 256,
  tokensPerStep: 1024,
  warmup: 5,
  steps: 40,
  evalEvery: 0,
  evalLengths: [] as number[],
  lr: 3e-3,
};

export const DEFAULT_PRETRAIN: Omit<PretrainOptions, 'out' | 'exportDir'> = {
  seed: 1,
  steps: 2640,
  tokensPerStep: 2048,
  lr: 3e-3,
  warmup: 50,
  minLrRatio: 0.1,
  clip: 1,
  hidden: 256,
  layers: 4,
  heads: 4,
  kvHeads: 2,
  intermediate: 640,
  ropeTheta: 50000,
  maxPositions: 4096,
  maxLength: 4096,
  evalEvery: 100,
  checkpointEvery: 20,
  evalLengths: [512, 1024, 2048],
  lrRestart: 0,
  lrRestartPeak: 0,
  timeLimit: 0,
  curriculum: DEFAULT_CURRICULUM,
  vocab: 'bytes',
  exportDtype: 'F32',
};

export function modelConfigOf(o: Omit<PretrainOptions, 'out' | 'exportDir'>, vocab: TrainVocab = vocabByName(o.vocab)): ModelConfig {
  if (o.hidden % o.heads !== 0) throw new KvevictError(`--hidden ${o.hidden} is not a multiple of --heads ${o.heads}`);
  if (o.heads % o.kvHeads !== 0) throw new KvevictError(`--heads ${o.heads} is not a multiple of --kv-heads ${o.kvHeads}`);
  return {
    modelType: 'llama',
    hiddenSize: o.hidden,
    intermediateSize: o.intermediate,
    numLayers: o.layers,
    numHeads: o.heads,
    numKvHeads: o.kvHeads,
    headDim: o.hidden / o.heads,
    vocabSize: vocab.size,
    rmsNormEps: 1e-5,
    ropeTheta: o.ropeTheta,
    ropeScaling: null,
    maxPositions: o.maxPositions,
    tieWordEmbeddings: true,
    attentionBias: false,
    qkNorm: false,
    bosTokenId: null,
    eosTokenIds: [],
  };
}

/** One record of the training log (runs/<name>/log.jsonl). */
export interface LogRecord {
  step: number;
  tokens: number;
  seconds: number;
  loss?: number;
  answerLoss?: number;
  lr?: number;
  gradNorm?: number;
  length?: number;
  tokensPerSecond?: number;
  eval?: HeldOutReport;
}

export interface PretrainResult {
  finalLoss: number;
  firstLoss: number;
  steps: number;
  history: LogRecord[];
}

/** Options that must not change across a resume (the rest, e.g. --steps or eval cadence, may). */
const FROZEN_KEYS = ['seed', 'hidden', 'layers', 'heads', 'kvHeads', 'intermediate', 'ropeTheta', 'maxPositions', 'vocab'] as const;

/** Train (or resume) the reference model; writes checkpoints, the log, the loss curve and the model folder. */
export async function pretrain(
  opts: PretrainOptions,
  resume: boolean,
  log: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  corpus: Corpus = loadCorpus(),
): Promise<PretrainResult> {
  const vocab = vocabByName(opts.vocab);
  const cfg = modelConfigOf(opts, vocab);
  const params = initParams(cfg, opts.seed);
  if (opts.initFrom) initFromModel(opts.initFrom, cfg, params);
  const list = namedParams(params).map((p) => p.tensor);
  const opt = new AdamW(list, DEFAULT_ADAMW);
  const model = new TrainModel(cfg, params);
  mkdirSync(opts.out, { recursive: true });
  const ckptFile = join(opts.out, 'checkpoint.bin');
  const logFile = join(opts.out, 'log.jsonl');
  let start = 0,
    tokensSeen = 0,
    elapsedBefore = 0;
  let history: LogRecord[] = [];
  /** the step a --continue-from restarted the optimizer at (its re-warm-up), or null */
  let rewarmFrom: number | null = null;
  if (!resume && existsSync(ckptFile) && !opts.force) {
    throw new KvevictError(
      `${ckptFile}: this run folder already holds a checkpoint; continue it with --resume, or start over with --force`,
    );
  }
  if (resume && existsSync(ckptFile)) {
    const meta = loadCheckpoint(ckptFile, list, opt);
    if (meta.step > opts.steps) throw new KvevictError(`--resume: ${ckptFile} is at step ${meta.step}, past --steps ${opts.steps}`);
    for (const k of FROZEN_KEYS) {
      const was = meta.options[k] ?? (k === 'vocab' ? 'bytes' : undefined);
      if (was !== undefined && was !== opts[k])
        throw new KvevictError(`--resume: option ${k} was ${JSON.stringify(was)} in ${ckptFile}, now ${JSON.stringify(opts[k])}`);
    }
    start = meta.step;
    tokensSeen = meta.tokensSeen;
    elapsedBefore = meta.elapsedSeconds;
    rewarmFrom = typeof meta.options.rewarmFrom === 'number' ? meta.options.rewarmFrom : null;
    history = (meta.history as LogRecord[]).filter((r) => r.step <= start);
    // the log restarts from the checkpoint: the steps after it are done again, and must not appear twice
    writeFileSync(logFile, history.map((r) => JSON.stringify(r) + '\n').join(''));
    log(`resumed from ${ckptFile} at step ${start}`);
  } else if (opts.continueFrom) {
    const state = readTrainState(opts.continueFrom);
    for (const k of FROZEN_KEYS) {
      if (state.options[k] !== opts[k])
        throw new KvevictError(
          `--continue-from: option ${k} was ${JSON.stringify(state.options[k])} in ${opts.continueFrom}, now ${JSON.stringify(opts[k])}`,
        );
    }
    if (state.step > opts.steps)
      throw new KvevictError(`--continue-from: ${opts.continueFrom} is at step ${state.step}, past --steps ${opts.steps}`);
    initFromModel(opts.continueFrom, cfg, params);
    start = state.step;
    tokensSeen = state.tokensSeen;
    elapsedBefore = state.elapsedSeconds;
    history = state.history.filter((r) => r.step <= start);
    rewarmFrom = start;
    writeFileSync(logFile, history.map((r) => JSON.stringify(r) + '\n').join(''));
    log(
      `continued from ${opts.continueFrom} at step ${start} (its stored weights; optimizer moments restart, the learning rate re-warms over ${REWARM_STEPS} steps)`,
    );
  } else {
    if (resume) log(`no checkpoint in ${opts.out}; starting from scratch`);
    writeFileSync(logFile, '');
  }
  log(
    `model: ${countParams(params)} parameters, ${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, ${cfg.numHeads} query / ${cfg.numKvHeads} KV heads, vocabulary ${vocab.name} (${vocab.size}); kernels: ${kernels().name}`,
  );

  const schedule = { peak: opts.lr, warmup: opts.warmup, total: opts.steps, minRatio: opts.minLrRatio };
  const bar = new ProgressBar(opts.steps);
  const t0 = Date.now();
  let windowTokens = 0,
    windowStart = Date.now(),
    lastLoss = NaN,
    firstLoss = NaN;
  const frozen: Record<string, unknown> = {};
  for (const k of FROZEN_KEYS) frozen[k] = opts[k];

  const save = (step: number) => {
    saveCheckpoint(ckptFile, list, opt, {
      step,
      options: { ...frozen, rewarmFrom },
      tokensSeen,
      elapsedSeconds: elapsedBefore + (Date.now() - t0) / 1000,
      history,
    });
    writeFileSync(join(opts.out, 'loss.svg'), lossCurve(history));
  };
  const exportAll = (step: number) => {
    for (const dir of [opts.out, opts.exportDir]) {
      if (!dir) continue;
      exportModel(dir, cfg, params, { step: String(step), tokens: String(tokensSeen) }, opts.exportDtype, vocab);
      writeFileSync(join(dir, 'loss.svg'), lossCurve(history));
      const state: TrainState = {
        step,
        tokensSeen,
        elapsedSeconds: elapsedBefore + (Date.now() - t0) / 1000,
        options: frozen,
        weights: opts.exportDtype,
        history,
      };
      writeFileSync(join(dir, TRAIN_STATE_FILE), JSON.stringify(state) + '\n');
    }
  };
  const evaluate = (step: number, full: boolean) => {
    const t = Date.now();
    const report = evaluateHeldOut(
      model,
      corpus,
      {
        lengths: opts.evalLengths.filter((l) => l <= opts.maxLength),
        depths: [0.1, 0.3, 0.5, 0.7, 0.9],
        tasks: full ? { length: Math.min(1024, opts.maxLength), perTask: 4 } : undefined,
        perplexityTokens: full ? 8192 : undefined,
      },
      vocab,
    );
    const rec: LogRecord = { step, tokens: tokensSeen, seconds: elapsedBefore + (Date.now() - t0) / 1000, eval: report };
    history.push(rec);
    appendFileSync(logFile, JSON.stringify(rec) + '\n');
    const niah = Object.entries(report.niah)
      .map(([l, a]) => `${l}:${(a * 100).toFixed(0)}%`)
      .join(' ');
    const tok = Object.entries(report.niahTokens)
      .map(([l, a]) => `${l}:${(a * 100).toFixed(0)}%`)
      .join(' ');
    log(
      `eval step ${step}: needle exact ${niah} | needle tokens ${tok}${report.tasks ? ' | tasks ' + JSON.stringify(report.tasks) : ''}${report.perplexity ? ` | held-out ppl ${report.perplexity.toFixed(2)}` : ''} (${((Date.now() - t) / 1000).toFixed(0)} s)`,
    );
    exportAll(step);
  };

  for (let step = start; step < opts.steps; step++) {
    const progress = step / opts.steps;
    const batch = trainingBatch(
      corpus,
      opts.seed,
      step,
      progress,
      opts.tokensPerStep,
      opts.curriculum,
      Math.min(opts.maxLength, cfg.maxPositions),
      vocab,
    );
    const tape = new Tape();
    beginBufferScope();
    const logits = model.logits(tape, batch);
    const ce = crossEntropy(tape, logits, batch.targets, batch.weights);
    tape.backward(ce.loss);
    endBufferScope();
    const gradNorm = clipGradNorm(list, opts.clip);
    const base =
      opts.lrRestart > 0 && step >= opts.lrRestart
        ? learningRate({ ...schedule, peak: opts.lrRestartPeak || opts.lr, total: opts.steps - opts.lrRestart }, step - opts.lrRestart)
        : learningRate(schedule, step);
    const lr = rewarmFrom !== null && step - rewarmFrom < REWARM_STEPS ? (base * (step - rewarmFrom + 1)) / REWARM_STEPS : base;
    opt.step(lr);
    for (const p of list) p.zeroGrad();

    let al = 0,
      an = 0;
    for (let r = 0; r < batch.tokens; r++)
      if (batch.weights[r] === 1) {
        al += ce.rowLoss[r];
        an++;
      }
    const loss = ce.loss.data[0];
    if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${step} (loss ${loss})`);
    if (Number.isNaN(firstLoss)) firstLoss = loss;
    lastLoss = loss;
    tokensSeen += batch.tokens;
    windowTokens += batch.tokens;
    const now = Date.now();
    const tps = (windowTokens * 1000) / Math.max(1, now - windowStart);
    if (now - windowStart > 60000) {
      windowTokens = 0;
      windowStart = now;
    }
    const rec: LogRecord = {
      step: step + 1,
      tokens: tokensSeen,
      seconds: elapsedBefore + (now - t0) / 1000,
      loss,
      answerLoss: an ? al / an : undefined,
      lr,
      gradNorm,
      length: batch.spans[0].length,
      tokensPerSecond: tps,
    };
    history.push(rec);
    appendFileSync(logFile, JSON.stringify(rec) + '\n');
    const perStep = secondsPerStep(history, (now - t0) / 1000 / (step + 1 - start));
    bar.update(
      step + 1,
      {
        tokensPerSecond: tps,
        loss,
        secondsLeft: perStep * (opts.steps - step - 1),
        extra: `ans ${(an ? al / an : 0).toFixed(3)} len ${batch.spans[0].length}`,
      },
      step + 1 === opts.steps,
    );

    const last = step + 1 === opts.steps;
    const outOfTime =
      (opts.timeLimit > 0 && (now - t0) / 1000 > opts.timeLimit) ||
      (opts.stopAfter !== undefined && opts.stopAfter > 0 && step + 1 >= opts.stopAfter);
    if ((step + 1) % opts.checkpointEvery === 0 || last || outOfTime) save(step + 1);
    if (opts.evalEvery > 0 && ((step + 1) % opts.evalEvery === 0 || last || outOfTime)) {
      evaluate(step + 1, last || outOfTime || (step + 1) % (opts.evalEvery * 4) === 0);
      save(step + 1);
    }
    if ((last || outOfTime) && opts.evalEvery <= 0) exportAll(step + 1);
    if (outOfTime) {
      log(
        `${opts.stopAfter && step + 1 >= opts.stopAfter ? `stopped after step ${step + 1}` : 'time limit reached'} after ${formatDuration((now - t0) / 1000)}; checkpoint saved at step ${step + 1} (continue with --resume)`,
      );
      break;
    }
  }
  bar.done();
  return { finalLoss: lastLoss, firstLoss, steps: opts.steps, history };
}

/**
 * Seconds per step for the time left: over the last 50 training steps of the log (before a resume too), so
 * that the first steps after a restart, slow while the code warms up, do not inflate it; evaluation pauses
 * (gaps in the log's clock) are left out.
 */
export function secondsPerStep(history: readonly { step: number; seconds: number; loss?: number }[], fallback: number): number {
  const train = history.filter((h) => h.loss !== undefined).slice(-51);
  const gaps: number[] = [];
  for (let i = 1; i < train.length; i++) {
    const dt = train[i].seconds - train[i - 1].seconds,
      ds = train[i].step - train[i - 1].step;
    if (ds === 1 && dt > 0) gaps.push(dt);
  }
  if (gaps.length < 5) return fallback;
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)];
}

/** Steps over which the learning rate re-warms after --continue-from (fresh optimizer moments). */
export const REWARM_STEPS = 20;

/** What an exported model folder records of its run (DIR/train-state.json), so the run can go on from the folder alone. */
export interface TrainState {
  step: number;
  tokensSeen: number;
  elapsedSeconds: number;
  options: Record<string, unknown>;
  /** dtype the weights were exported in */
  weights: string;
  history: LogRecord[];
}

export const TRAIN_STATE_FILE = 'train-state.json';

export function readTrainState(dir: string): TrainState {
  const file = join(dir, TRAIN_STATE_FILE);
  if (!existsSync(file)) throw new KvevictError(`${file}: not found (--continue-from needs a folder exported by pretrain)`);
  let s: TrainState;
  try {
    s = JSON.parse(readFileSync(file, 'utf8')) as TrainState;
  } catch {
    throw new KvevictError(`${file}: not valid JSON`);
  }
  if (
    !s ||
    typeof s !== 'object' ||
    !isCount(s.step) ||
    !isCount(s.tokensSeen) ||
    typeof s.elapsedSeconds !== 'number' ||
    !Array.isArray(s.history) ||
    typeof s.options !== 'object' ||
    s.options === null
  ) {
    throw new KvevictError(`${file}: not a training state (step, tokensSeen, elapsedSeconds, options, history)`);
  }
  return s;
}

/** Copy a model folder's weights into freshly made parameters; the folder's shape must be the run's. */
export function initFromModel(dir: string, cfg: ModelConfig, params: ModelParams): void {
  const theirs = loadConfig(dir);
  for (const k of ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize'] as const) {
    if (theirs[k] !== cfg[k]) throw new KvevictError(`--init-from ${dir}: config.json has ${k} ${theirs[k]}, the run has ${cfg[k]}`);
  }
  const src = namedParams(paramsFromWeights(loadWeights(dir, theirs), false));
  const dst = namedParams(params);
  src.forEach((p, i) => dst[i].tensor.data.set(p.tensor.data));
}

/** Training loss (smoothed) and needle accuracy against tokens seen. */
export function lossCurve(history: LogRecord[]): string {
  const train = history.filter((h) => h.loss !== undefined);
  const smooth: [number, number][] = [];
  let ema = NaN;
  for (const h of train) {
    ema = Number.isNaN(ema) ? h.loss! : 0.9 * ema + 0.1 * h.loss!;
    smooth.push([h.tokens, ema]);
  }
  const answer: [number, number][] = [];
  ema = NaN;
  for (const h of train) {
    if (h.answerLoss === undefined) continue;
    ema = Number.isNaN(ema) ? h.answerLoss : 0.9 * ema + 0.1 * h.answerLoss;
    answer.push([h.tokens, ema]);
  }
  const evals = history.filter((h) => h.eval);
  const colors = ['#2ca02c', '#9467bd', '#8c564b', '#e377c2'];
  const lengths = [...new Set(evals.flatMap((h) => Object.keys(h.eval!.niah)))];
  return lineChartSvg('kvevict-ref training', 'tokens seen', [
    { label: 'training loss (weighted, EMA)', color: '#1f77b4', points: smooth },
    { label: 'answer-token loss (EMA)', color: '#ff7f0e', points: answer },
    ...lengths.map((l, i) => ({
      label: `held-out needle answer tokens right @${l} (teacher-forced, right axis)`,
      color: colors[i % colors.length],
      rightAxis: true,
      points: evals.map((h) => [h.tokens, h.eval!.niahTokens[l] ?? 0] as [number, number]),
    })),
  ]);
}
