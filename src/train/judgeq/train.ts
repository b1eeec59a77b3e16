/**
 * Training of the rows appended after a prompt to predict where its answer will look, the model frozen:
 * Judge Q's soft tokens (only the m x hidden embeddings learn; MSE) and LookaheadKV's lookahead tokens with
 * LoRA adapters active on those rows only (KL). Each step takes `batch` training prompts (paired with the
 * model's own cached greedy responses), prefills each prompt once, and accumulates the gradient of the
 * attention-matching loss through the appended rows only; AdamW, warm-up and cosine decay, held-out loss,
 * checkpoints that resume exactly, and a loss curve.
 */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { param, type Tensor } from '../../autograd/tensor.js';
import { KvevictError } from '../../errors.js';
import { kernels } from '../../kernels/index.js';
import { LlamaModel } from '../../model/llama.js';
import { loadModelDir } from '../../model/load.js';
import { floatMatrix } from '../../model/weights.js';
import { AppendedRows, loraShape, type Lora, type LoraTarget } from '../../model/appended-rows.js';
import { loadLookaheadModules, saveLookaheadModules } from '../../press/queries/lookahead-adapter-file.js';
import { loadSoftTokens, modelHash, saveSoftTokens } from '../../press/queries/soft-tokens-file.js';
import { Rng } from '../../util/rng.js';
import { AdamW, type AdamWOptions } from '../adamw.js';
import { loadCheckpoint, saveCheckpoint } from '../checkpoint.js';
import { secondsPerStep } from '../pretrain.js';
import { lineChartSvg } from '../loss-svg.js';
import { ProgressBar, formatDuration } from '../progress.js';
import { learningRate } from '../schedule.js';
import { prefill, type Prefilled } from '../../generate/pipeline.js';
import { TRAINING_KV_DTYPE, exampleLoss, type JudgeqExample, type Learned } from './objective.js';
import { buildPrompts, type JudgeqPrompt } from './prompts.js';
import { ResponseCache } from './responses.js';

/** What is trained: Judge Q's soft tokens, or LookaheadKV's lookahead tokens and LoRA adapters. */
export type TrainedKind = 'judgeq' | 'lookaheadkv';

/** Everything that defines a run; a resumed run must agree on all of it. */
export interface JudgeqRecipe {
  /** the appended rows: soft tokens (Judge Q) or lookahead tokens (LookaheadKV) */
  softTokens: number;
  steps: number;
  lr: number;
  warmup: number;
  minLrRatio: number;
  batch: number;
  seed: number;
  trainPrompts: number;
  heldOutPrompts: number;
  minLength: number;
  maxLength: number;
  maxResponse: number;
  /**
   * Weigh each prompt's loss by (L / 1024)^2. The MSE of attention rows scales as 1 / L^2 (each entry is about
   * 1 / L), so without it the short prompts of a batch give almost all of the gradient.
   */
  lengthWeight: boolean;
  /** start from these soft tokens (e.g. trained for an earlier checkpoint of the model) instead of token embeddings */
  initFrom: string | null;
}

/** LookaheadKV's recipe: Judge Q's, plus the LoRA adapters of the lookahead rows. */
export interface LookaheadkvRecipe extends JudgeqRecipe {
  loraRank: number;
  loraAlpha: number;
  loraTargets: LoraTarget[];
}

export interface JudgeqTrainOptions extends JudgeqRecipe {
  /** default 'judgeq'; 'lookaheadkv' takes the LoRA fields of LookaheadkvRecipe */
  kind?: TrainedKind;
  loraRank?: number;
  loraAlpha?: number;
  loraTargets?: LoraTarget[];
  modelDir: string;
  out: string;
  /** responses cache, checkpoint, log and loss curve */
  runDir: string;
  resume: boolean;
  /** start over in a run folder that already holds a checkpoint */
  force?: boolean;
  evalEvery: number;
  checkpointEvery: number;
  /** stop (checkpointed, soft tokens written) after this many seconds in this process; 0 = no limit */
  timeLimit: number;
  /** progress on stderr */
  quiet: boolean;
}

export const DEFAULT_RECIPE: JudgeqRecipe = {
  softTokens: 32,
  steps: 300,
  lr: 5e-3,
  warmup: 10,
  minLrRatio: 0.1,
  batch: 4,
  seed: 1,
  trainPrompts: 600,
  heldOutPrompts: 24,
  minLength: 256,
  maxLength: 2048,
  maxResponse: 96,
  lengthWeight: false,
  initFrom: null,
};

/** The paper's LookaheadKV setting (arXiv 2603.10899): 32 lookahead tokens, LoRA of rank 8, alpha 32, on every linear layer. */
export const DEFAULT_LOOKAHEADKV_RECIPE: LookaheadkvRecipe = {
  ...DEFAULT_RECIPE,
  lr: 2e-3,
  loraRank: 8,
  loraAlpha: 32,
  loraTargets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'],
};

export const SOFT_ADAMW: AdamWOptions = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 };

export interface TrainRecord {
  step: number;
  seconds: number;
  loss?: number;
  lr?: number;
  prompts?: number;
  tokens?: number;
  heldOutLoss?: number;
}

export interface JudgeqTrainResult {
  out: string;
  steps: number;
  complete: boolean;
  seconds: number;
  history: TrainRecord[];
  finalTrainLoss: number;
  finalHeldOutLoss: number;
  initialHeldOutLoss: number;
  promptsSeen: number;
  tokensSeen: number;
  responsesGenerated: number;
}

/** The fields of a recipe, in the order it is written. */
const RECIPE_FIELDS = [
  'softTokens',
  'steps',
  'lr',
  'warmup',
  'minLrRatio',
  'batch',
  'seed',
  'trainPrompts',
  'heldOutPrompts',
  'minLength',
  'maxLength',
  'maxResponse',
  'lengthWeight',
  'initFrom',
] as const satisfies readonly (keyof JudgeqRecipe)[];
const LORA_FIELDS = ['loraRank', 'loraAlpha', 'loraTargets'] as const satisfies readonly (keyof LookaheadkvRecipe)[];

function recipeOf(o: JudgeqTrainOptions): JudgeqRecipe | LookaheadkvRecipe {
  const fields: readonly string[] = o.kind === 'lookaheadkv' ? [...RECIPE_FIELDS, ...LORA_FIELDS] : RECIPE_FIELDS;
  return Object.fromEntries(fields.map((k) => [k, (o as unknown as Record<string, unknown>)[k]])) as unknown as JudgeqRecipe;
}

/** The command that trains `kind`, as errors name it. */
export const toolOf = (kind: TrainedKind | undefined): string => (kind === 'lookaheadkv' ? 'train-lookaheadkv' : 'train-judgeq');

export function checkRecipe(o: JudgeqTrainOptions): void {
  const tool = toolOf(o.kind);
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new KvevictError(`${tool}: --${name} must be an integer >= ${min}, got ${v}`);
  };
  int(o.kind === 'lookaheadkv' ? 'lookahead-tokens' : 'soft-tokens', o.softTokens, 1);
  int('steps', o.steps, 1);
  int('batch', o.batch, 1);
  int('prompts', o.trainPrompts, 1);
  int('held-out', o.heldOutPrompts, 1);
  int('min-length', o.minLength, 16);
  int('max-length', o.maxLength, o.minLength);
  int('max-response', o.maxResponse, 1);
  if (!(o.lr > 0 && Number.isFinite(o.lr))) throw new KvevictError(`${tool}: --lr must be a positive number, got ${o.lr}`);
  if (o.kind === 'lookaheadkv') {
    int('lora-rank', o.loraRank ?? 0, 1);
    if (!((o.loraAlpha ?? 0) > 0 && Number.isFinite(o.loraAlpha)))
      throw new KvevictError(`${tool}: --lora-alpha must be a positive number, got ${o.loraAlpha}`);
    if (!o.loraTargets || o.loraTargets.length === 0)
      throw new KvevictError(`${tool}: --lora-targets must name at least one of q,k,v,o,gate,up,down`);
  }
}

/**
 * LoRA adapters for every layer and target, initialized as LoRA does: A uniform in +-1/sqrt(in) (Kaiming
 * uniform with a = sqrt(5), as PEFT), B zero, so training starts from the frozen model's own lookahead rows.
 */
export function initialLora(
  cfg: { numLayers: number } & Parameters<typeof loraShape>[0],
  rank: number,
  alpha: number,
  targets: LoraTarget[],
  seed: number,
): Lora {
  const rng = new Rng(seed * 7919 + 17);
  const layers = Array.from({ length: cfg.numLayers }, (_, l) =>
    Object.fromEntries(
      targets.map((t) => {
        const [out, inDim] = loraShape(cfg, t);
        const bound = 1 / Math.sqrt(inDim);
        const a = new Float32Array(rank * inDim);
        for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
        return [
          t,
          { a: param(a, [rank, inDim], `lora.${l}.${t}.a`), b: param(new Float32Array(out * rank), [out, rank], `lora.${l}.${t}.b`) },
        ];
      }),
    ),
  );
  return { rank, alpha, layers };
}

/** Every trainable tensor of a Lora, in file order. */
export function loraParams(lora: Lora): Tensor[] {
  return lora.layers.flatMap((layer) => Object.values(layer).flatMap((p) => [p.a, p.b]));
}

/** Initial soft embeddings: the embedding rows of random vocabulary tokens (a common prompt-tuning start). */
export function initialSoftTokens(embed: Float32Array, vocab: number, hidden: number, count: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(count * hidden);
  for (let i = 0; i < count; i++) {
    const t = rng.int(vocab);
    out.set(embed.subarray(t * hidden, (t + 1) * hidden), i * hidden);
  }
  return out;
}

/** The training prompts of step `step`: consecutive slices of seeded per-epoch permutations. */
function batchIndices(n: number, batch: number, step: number, seed: number): number[] {
  const out: number[] = [];
  for (let k = step * batch; k < (step + 1) * batch; k++) {
    const epoch = Math.floor(k / n);
    const perm = new Rng(seed * 1000003 + epoch).shuffle(Array.from({ length: n }, (_, i) => i));
    out.push(perm[k % n]);
  }
  return out;
}

function machine(): string {
  const c = cpus();
  return `${c[0]?.model.trim() ?? 'unknown CPU'} (${c.length} cores), Node ${process.versions.node}, ${kernels().name} kernels`;
}

/** How each kind's loss is shown: MSE of attention rows is about 1e-6, KL about 1. */
export const LOSS_UNIT: Record<TrainedKind, { factor: number; suffix: string; title: string }> = {
  judgeq: { factor: 1e6, suffix: '(x1e-6)', title: 'Judge Q soft tokens: attention-matching loss (MSE x 1e6)' },
  lookaheadkv: {
    factor: 1,
    suffix: '(KL)',
    title: 'LookaheadKV: attention-matching loss (KL of the answer attention to the lookahead attention)',
  },
};

function formatLoss(x: number, kind: TrainedKind): string {
  return kind === 'judgeq' ? `${(x * 1e6).toFixed(4)}e-6` : x.toFixed(4);
}

function lossSvg(history: TrainRecord[], kind: TrainedKind): string {
  const f = LOSS_UNIT[kind].factor;
  const held = history.filter((r) => r.heldOutLoss !== undefined).map((r) => [r.step, r.heldOutLoss! * f] as [number, number]);
  const train = history.filter((r) => r.loss !== undefined).map((r) => [r.step, r.loss! * f] as [number, number]);
  // a batch of very short prompts has a loss far above the rest (attention entries are about 1 / L): the
  // running median over 10 steps shows the trend, and batch points are clipped to keep the scale readable
  const cap = 3 * Math.max(1e-9, ...held.map((p) => p[1]), ...train.slice(0, 10).map((p) => p[1]));
  const median = train.map(([s], i) => {
    const w = train
      .slice(Math.max(0, i - 9), i + 1)
      .map((p) => p[1])
      .sort((a, b) => a - b);
    return [s, Math.min(cap, w[w.length >> 1])] as [number, number];
  });
  return lineChartSvg(LOSS_UNIT[kind].title, 'step', [
    { label: 'train (batch, clipped)', color: '#c6dbef', points: train.map(([s, v]) => [s, Math.min(cap, v)] as [number, number]) },
    { label: 'train (10-step median)', color: '#2171b5', points: median },
    { label: 'held-out', color: '#d94801', points: held },
  ]);
}

/** Train Judge Q soft tokens for the model in `o.modelDir`; writes `o.out` (also when stopped by the time limit). */
export const trainJudgeq = (o: JudgeqTrainOptions): JudgeqTrainResult => trainAppendedRows({ ...o, kind: 'judgeq' });

/** Train LookaheadKV modules (lookahead tokens and their LoRA) for the model in `o.modelDir`; writes `o.out`. */
export const trainLookaheadkv = (o: JudgeqTrainOptions & Partial<LookaheadkvRecipe>): JudgeqTrainResult =>
  trainAppendedRows({ ...DEFAULT_LOOKAHEADKV_RECIPE, ...o, kind: 'lookaheadkv' });

function trainAppendedRows(o: JudgeqTrainOptions): JudgeqTrainResult {
  checkRecipe(o);
  const kind = o.kind ?? 'judgeq';
  const tool = toolOf(kind);
  const rowsName = kind === 'lookaheadkv' ? 'lookahead tokens' : 'soft tokens';
  const t0 = performance.now();
  const loaded = loadModelDir(o.modelDir);
  const cfg = loaded.config;
  const model = new LlamaModel(cfg, loaded.weights);
  const hash = modelHash(cfg, loaded.weights);
  if (o.maxLength + o.softTokens > cfg.maxPositions) {
    throw new KvevictError(
      `${tool}: --max-length ${o.maxLength} plus ${o.softTokens} ${rowsName} passes max_position_embeddings ${cfg.maxPositions}`,
    );
  }
  const recipe = recipeOf(o);
  mkdirSync(o.runDir, { recursive: true });
  const ckptFile = join(o.runDir, 'checkpoint.bin');
  const logFile = join(o.runDir, 'log.jsonl');
  const stop = [...new Set([...loaded.tokenizer.eosTokenIds, ...cfg.eosTokenIds])];
  const responses = new ResponseCache(join(o.runDir, `responses-${hash.slice(0, 12)}.jsonl`), hash, o.maxResponse, stop);
  const say = (s: string) => {
    if (!o.quiet) process.stderr.write(s + '\n');
  };

  const lengths = { minLength: o.minLength, maxLength: o.maxLength };
  const trainSet = buildPrompts(loaded.tokenizer, { count: o.trainPrompts, split: 'train', seed: o.seed, ...lengths });
  const heldSet = buildPrompts(loaded.tokenizer, { count: o.heldOutPrompts, split: 'heldout', seed: o.seed, ...lengths });

  let init = initialSoftTokens(floatMatrix(loaded.weights.embed), cfg.vocabSize, cfg.hiddenSize, o.softTokens, o.seed);
  const lora = kind === 'lookaheadkv' ? initialLora(cfg, o.loraRank!, o.loraAlpha!, o.loraTargets!, o.seed) : null;
  if (o.initFrom !== null) {
    // another model's rows are a starting point here, so only the shapes must agree
    const modules = kind === 'lookaheadkv' ? loadLookaheadModules(o.initFrom) : null;
    const from = modules ?? loadSoftTokens(o.initFrom);
    if (from.count !== o.softTokens || from.hiddenSize !== cfg.hiddenSize) {
      throw new KvevictError(
        `${o.initFrom}: --init-from needs ${o.softTokens} ${rowsName} of size ${cfg.hiddenSize}, the file has ${from.count} of size ${from.hiddenSize}`,
      );
    }
    init = from.embeddings;
    if (lora && modules) {
      const same = modules.rank === lora.rank && modules.targets.join() === o.loraTargets!.join() && modules.numLayers === cfg.numLayers;
      if (!same)
        throw new KvevictError(
          `${o.initFrom}: --init-from needs LoRA of rank ${lora.rank} on ${o.loraTargets!.join(',')} in ${cfg.numLayers} layers`,
        );
      lora.layers.forEach((layer, l) => {
        for (const [t, p] of Object.entries(layer)) {
          p.a.data.set(modules.lora[l][t as LoraTarget]!.a);
          p.b.data.set(modules.lora[l][t as LoraTarget]!.b);
        }
      });
    }
  }
  const soft = param(init, [o.softTokens, cfg.hiddenSize], kind === 'lookaheadkv' ? 'lookahead_embeddings' : 'soft_embeddings');
  const params = [soft, ...(lora ? loraParams(lora) : [])];
  const learned: Learned = { rows: soft, lora, loss: kind === 'lookaheadkv' ? 'kl' : 'mse' };
  const opt = new AdamW(params, SOFT_ADAMW);
  let step = 0,
    promptsSeen = 0,
    tokensSeen = 0,
    elapsedBefore = 0;
  let history: TrainRecord[] = [];
  if (!o.resume && !o.force && existsSync(ckptFile)) {
    throw new KvevictError(
      `${ckptFile}: this run folder already holds a checkpoint; continue it with --resume, or start over with --force`,
    );
  }
  if (o.resume) {
    if (!existsSync(ckptFile)) throw new KvevictError(`${ckptFile}: no checkpoint to resume from (run without --resume first)`);
    const meta = loadCheckpoint(ckptFile, params, opt, (options) => {
      const theirs = options as { recipe?: JudgeqRecipe; modelHash?: string; kind?: TrainedKind };
      if ((theirs.kind ?? 'judgeq') !== kind)
        throw new KvevictError(`${ckptFile}: the checkpoint is of a ${theirs.kind ?? 'judgeq'} run, not ${kind}`);
      if (theirs.modelHash !== hash)
        throw new KvevictError(
          `${ckptFile}: the checkpoint was made for another model (model_hash ${String(theirs.modelHash).slice(0, 12)}...)`,
        );
      for (const [k, v] of Object.entries(recipe)) {
        const was = (theirs.recipe as unknown as Record<string, unknown> | undefined)?.[k];
        if (JSON.stringify(was) !== JSON.stringify(v))
          throw new KvevictError(
            `${ckptFile}: the checkpoint was made with ${k} = ${String(was)}, not ${String(v)} (give the same options to resume)`,
          );
      }
    });
    if (meta.step > o.steps) throw new KvevictError(`--resume: ${ckptFile} is at step ${meta.step}, past --steps ${o.steps}`);
    step = meta.step;
    tokensSeen = meta.tokensSeen;
    elapsedBefore = meta.elapsedSeconds;
    history = meta.history as TrainRecord[];
    promptsSeen = history.reduce((a, r) => a + (r.prompts ?? 0), 0);
    writeFileSync(logFile, history.map((r) => JSON.stringify(r) + '\n').join(''));
    say(`${tool}: resumed at step ${step} of ${o.steps} from ${ckptFile}`);
  } else {
    writeFileSync(logFile, '');
  }
  // a finished run resumed (for its card, say) keeps the delivered file as it is: rewritten, it would be a new
  // version to every result keyed on it
  const finishedBefore = o.resume && step >= o.steps && existsSync(o.out);
  const log = (r: TrainRecord) => {
    history.push(r);
    appendFileSync(logFile, JSON.stringify(r) + '\n');
  };

  const forward = new AppendedRows(cfg, loaded.weights);
  const elapsed = () => elapsedBefore + (performance.now() - t0) / 1000;
  /** The example of a prompt (its response generated on the same prefill when new), or null when the model answers nothing. */
  const exampleOf = (p: JudgeqPrompt, prefilled: Prefilled): JudgeqExample | null => {
    const response = responses.get(model, p.tokens, prefilled);
    return response.length > 0 ? { prompt: p.tokens, response } : null;
  };
  /** A prompt's weight in the loss: (L / 1024)^2 with --length-weight, else 1. */
  const weightOf = (ex: JudgeqExample): number => (o.lengthWeight ? (ex.prompt.length / 1024) ** 2 : 1);
  const heldOutLoss = (): number => {
    let s = 0,
      n = 0;
    // the same weighting as training, so the curves compare
    for (const p of heldSet) {
      const pre = prefill(model, p.tokens, { kvDtype: TRAINING_KV_DTYPE });
      const ex = exampleOf(p, pre);
      if (!ex) continue;
      const w = weightOf(ex);
      s += w * exampleLoss(model, forward, learned, ex, false, 1, pre.cache).loss;
      n += w;
    }
    return n > 0 ? s / n : NaN;
  };
  const save = (complete: boolean) => {
    const train = history.filter((r) => r.loss !== undefined).slice(-Math.max(1, Math.ceil(o.steps / 10)));
    const held = history.filter((r) => r.heldOutLoss !== undefined);
    mkdirSync(dirname(o.out) || '.', { recursive: true });
    const metadata = {
      recipe: JSON.stringify(recipe),
      steps: String(step),
      complete: String(complete),
      model: basename(o.modelDir),
      train_loss: String(train.reduce((a, r) => a + r.loss!, 0) / Math.max(1, train.length)),
      heldout_loss: String(held.length ? held[held.length - 1].heldOutLoss : NaN),
      heldout_loss_initial: String(held.length ? held[0].heldOutLoss : NaN),
      prompts_seen: String(promptsSeen),
      tokens_seen: String(tokensSeen),
      training_seconds: elapsed().toFixed(1),
      machine: machine(),
      created: new Date().toISOString(),
    };
    if (lora) {
      const arrays = lora.layers.map((layer) =>
        Object.fromEntries(Object.entries(layer).map(([t, p]) => [t, { a: p.a.data, b: p.b.data }])),
      );
      const m = {
        embeddings: soft.data,
        count: o.softTokens,
        hiddenSize: cfg.hiddenSize,
        numLayers: cfg.numLayers,
        rank: lora.rank,
        alpha: lora.alpha,
        targets: o.loraTargets!,
        lora: arrays,
        modelHash: hash,
      };
      saveLookaheadModules(o.out, m, (t) => loraShape(cfg, t), metadata);
    } else saveSoftTokens(o.out, { embeddings: soft.data, count: o.softTokens, hiddenSize: cfg.hiddenSize, modelHash: hash }, metadata);
    writeFileSync(join(o.runDir, 'loss.svg'), lossSvg(history, kind));
  };
  const checkpoint = () =>
    saveCheckpoint(ckptFile, params, opt, {
      step,
      options: { recipe, modelHash: hash, kind },
      tokensSeen,
      elapsedSeconds: elapsed(),
      history,
    });

  say(
    `${tool}: ${cfg.numLayers} layers, ${o.softTokens} ${rowsName} x ${cfg.hiddenSize}${lora ? ` with LoRA rank ${lora.rank} on ${o.loraTargets!.join(',')}` : ''}; ${trainSet.length} training and ${heldSet.length} held-out prompts; ${responses.size} cached responses`,
  );
  if (!history.some((r) => r.heldOutLoss !== undefined)) {
    const tH = performance.now();
    log({ step: 0, seconds: elapsed(), heldOutLoss: heldOutLoss() });
    say(
      `${tool}: held-out loss at the start ${formatLoss(history[history.length - 1].heldOutLoss!, kind)} (${((performance.now() - tH) / 1000).toFixed(1)} s)`,
    );
  }
  const bar = o.quiet ? null : new ProgressBar(o.steps);
  const startStep = step;
  const tStart = performance.now();
  let complete = step >= o.steps;
  while (step < o.steps) {
    if (o.timeLimit > 0 && (performance.now() - t0) / 1000 >= o.timeLimit) break;
    const lr = learningRate({ peak: o.lr, warmup: o.warmup, total: o.steps, minRatio: o.minLrRatio }, step);
    for (const p of params) p.zeroGrad();
    const picked = batchIndices(trainSet.length, o.batch, step, o.seed).map((i) => trainSet[i]);
    let lossSum = 0,
      weightSum = 0,
      tokens = 0,
      used = 0;
    for (const p of picked) {
      const pre = prefill(model, p.tokens, { kvDtype: TRAINING_KV_DTYPE });
      const ex = exampleOf(p, pre);
      if (!ex) continue;
      const weight = weightOf(ex);
      lossSum += weight * exampleLoss(model, forward, learned, ex, true, weight / o.batch, pre.cache).loss;
      weightSum += weight;
      tokens += ex.prompt.length + ex.response.length;
      used++;
    }
    if (used > 0) opt.step(lr);
    step++;
    promptsSeen += used;
    tokensSeen += tokens;
    log({ step, seconds: elapsed(), loss: used ? lossSum / weightSum : undefined, lr, prompts: used, tokens });
    if (step % o.evalEvery === 0 || step === o.steps) log({ step, seconds: elapsed(), heldOutLoss: heldOutLoss() });
    if (step % o.checkpointEvery === 0 || step === o.steps) checkpoint();
    if (bar) {
      const rate = (step - startStep) / ((performance.now() - tStart) / 1000);
      const held = history.filter((r) => r.heldOutLoss !== undefined);
      bar.update(
        step,
        {
          tokensPerSecond: tokensSeen / Math.max(1e-9, elapsed()),
          loss: used ? (lossSum / weightSum) * LOSS_UNIT[kind].factor : NaN,
          secondsLeft: (o.steps - step) * secondsPerStep(history, 1 / Math.max(1e-9, rate)),
          extra: `${LOSS_UNIT[kind].suffix}  held-out ${(held[held.length - 1].heldOutLoss! * LOSS_UNIT[kind].factor).toFixed(3)}  lr ${lr.toExponential(1)}`,
        },
        step === o.steps,
      );
    }
  }
  bar?.done();
  complete = step >= o.steps;
  if (!complete) {
    checkpoint();
    say(`${tool}: stopped by --time-limit at step ${step} of ${o.steps}; continue with --resume`);
  }
  if (finishedBefore) say(`${tool}: the run was already complete; ${o.out} is kept as it was`);
  else save(complete);
  const held = history.filter((r) => r.heldOutLoss !== undefined);
  const train = history.filter((r) => r.loss !== undefined).slice(-Math.max(1, Math.ceil(o.steps / 10)));
  const result: JudgeqTrainResult = {
    out: o.out,
    steps: step,
    complete,
    seconds: elapsed(),
    history,
    finalTrainLoss: train.reduce((a, r) => a + r.loss!, 0) / Math.max(1, train.length),
    finalHeldOutLoss: held.length ? held[held.length - 1].heldOutLoss! : NaN,
    initialHeldOutLoss: held.length ? held[0].heldOutLoss! : NaN,
    promptsSeen,
    tokensSeen,
    responsesGenerated: responses.generated,
  };
  say(
    `${tool}: ${step} steps in ${formatDuration(result.seconds)}; held-out loss ${result.initialHeldOutLoss.toExponential(3)} -> ${result.finalHeldOutLoss.toExponential(3)}; wrote ${o.out}`,
  );
  return result;
}
