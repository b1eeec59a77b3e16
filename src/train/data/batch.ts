import { Rng } from '../../util/rng.js';
import type { PackedInput } from '../model.js';
import type { Corpus } from './corpus.js';
import { encodeSample, type Encoded } from './encode.js';
import { BYTE_VOCAB, type TrainVocab } from './vocab.js';
import { TASKS, makeDialogue, plainText, type Sample, type Split, type TaskName } from './tasks.js';

/** Share of each kind of sequence in training batches. */
export const TASK_MIX: Record<TaskName | 'text', number> = {
  niah_place: 0.14,
  niah_multikey: 0.2,
  niah_multivalue: 0.06,
  niah_multiquery: 0.06,
  passkey: 0.04,
  variable_tracking: 0.05,
  common_words: 0.04,
  frequent_words: 0.04,
  instruct: 0.03,
  repeat: 0.15,
  cloze: 0.07,
  text: 0.12,
};

export interface Batch extends PackedInput {
  targets: Int32Array;
  weights: Float32Array;
  samples: Encoded[];
  tokens: number;
}

/**
 * A copy-heavy mix for a phase of short sequences: dense copying and key lookups, the skills that retrieval
 * is built from, without the plain text that dilutes them.
 */
export const COPY_MIX: Partial<Record<TaskName | 'text', number>> = {
  repeat: 0.35,
  niah_multikey: 0.3,
  niah_place: 0.15,
  passkey: 0.1,
  cloze: 0.1,
};

/**
 * A retrieval-heavy mix for fine-tuning at long lengths: needles and keyed lookups whose answers are copied
 * byte for byte from far back, with some copying and text so that neither skill is forgotten.
 */
export const RETRIEVE_MIX: Partial<Record<TaskName | 'text', number>> = {
  niah_place: 0.2,
  niah_multikey: 0.2,
  niah_multivalue: 0.08,
  niah_multiquery: 0.08,
  passkey: 0.04,
  variable_tracking: 0.08,
  common_words: 0.06,
  frequent_words: 0.06,
  cloze: 0.08,
  repeat: 0.06,
  text: 0.06,
};

/**
 * Lookups of random values (digits, uuids) from far back, densely supervised: the continuation of a copy
 * after its first byte needs an induction circuit that works at long range, which copying from a nearby
 * question (the `repeat` task) does not train.
 */
export const LOOKUP_MIX: Partial<Record<TaskName | 'text', number>> = {
  passkey: 0.1,
  niah_multikey: 0.25,
  niah_multiquery: 0.15,
  niah_multivalue: 0.1,
  niah_place: 0.1,
  variable_tracking: 0.08,
  cloze: 0.1,
  repeat: 0.07,
  text: 0.05,
};

/**
 * Key binding: many needles of one form, each asked for by its key (multi-key, multi-query, multi-value,
 * variable chains). A model that finds a lone needle but answers a multi-key question with another key's
 * value needs this, and it is learned as well at 1-2K tokens as at 8K, at a quarter of the cost.
 */
export const BIND_MIX: Partial<Record<TaskName | 'text', number>> = {
  niah_multikey: 0.28,
  niah_multiquery: 0.12,
  niah_multivalue: 0.1,
  variable_tracking: 0.1,
  niah_place: 0.1,
  repeat: 0.1,
  common_words: 0.05,
  frequent_words: 0.05,
  cloze: 0.06,
  text: 0.04,
};

export const MIXES: Record<string, Partial<Record<TaskName | 'text', number>>> = {
  default: TASK_MIX,
  copy: COPY_MIX,
  retrieve: RETRIEVE_MIX,
  lookup: LOOKUP_MIX,
  bind: BIND_MIX,
};

function pickTask(rng: Rng, mix: Partial<Record<TaskName | 'text', number>> = TASK_MIX): TaskName | 'text' {
  let r = rng.next();
  for (const [t, w] of Object.entries(mix) as [TaskName | 'text', number][]) if ((r -= w) < 0) return t;
  return 'text';
}

/**
 * One sample of about `length` tokens, never more than `length + 1` ids. The generators size their text in
 * characters: the first try assumes the vocabulary's characters per token, later tries rescale by what the
 * encoding really took.
 */
export function makeSample(
  rng: Rng,
  corpus: Corpus,
  split: Split,
  task: TaskName | 'text',
  length: number,
  vocab: TrainVocab = BYTE_VOCAB,
): Encoded {
  let want = Math.round(length * vocab.charsPerToken);
  for (let attempt = 0; ; attempt++) {
    const s: Sample =
      task === 'text' ? plainText(rng, corpus, split, want + 1) : makeDialogue(task, rng, corpus, split, want, vocab.pieces);
    const enc = encodeSample(s, vocab);
    if (enc.ids.length <= length + 1) return enc;
    if (attempt > 8 && task !== 'text') return makeSample(rng, corpus, split, 'passkey', length, vocab);
    if (task === 'text') {
      // plain text (or a stubborn sample): crop, dropping answers that no longer fit
      return {
        ids: enc.ids.slice(0, length + 1),
        weights: enc.weights.slice(0, length),
        task: enc.task,
        answers: enc.answers.filter((a) => a.end <= length),
      };
    }
    const over = enc.ids.length - (length + 1);
    want = vocab.charsPerToken === 1 ? want - over - 8 : Math.floor((want * (length + 1)) / enc.ids.length) - 8;
  }
}

/** Pack encoded samples into one batch (each sample its own causal sequence). */
export function packBatch(samples: Encoded[]): Batch {
  const rows = samples.reduce((a, s) => a + s.ids.length - 1, 0);
  const ids = new Int32Array(rows),
    targets = new Int32Array(rows),
    positions = new Int32Array(rows),
    weights = new Float32Array(rows);
  const spans = [];
  let o = 0;
  for (const s of samples) {
    const n = s.ids.length - 1;
    ids.set(s.ids.subarray(0, n), o);
    targets.set(s.ids.subarray(1), o);
    weights.set(s.weights, o);
    for (let i = 0; i < n; i++) positions[i + o] = i;
    spans.push({ start: o, length: n });
    o += n;
  }
  return { ids, targets, positions, weights, spans, samples, tokens: rows };
}

/** Sequence lengths by training progress (0..1): short first, the full context last. */
export interface CurriculumStage {
  until: number;
  lengths: number[];
  /** name of the task mix (MIXES); default TASK_MIX */
  mix?: string;
}

/**
 * The recipe's curriculum: a short warm-up on 256-token mixed sequences, then a long copy-heavy phase on
 * 128-256 tokens (where copying and key lookup form, late and suddenly), then the full mix at growing lengths.
 */
export const DEFAULT_CURRICULUM: CurriculumStage[] = [
  { until: 0.05, lengths: [256] },
  { until: 0.6, lengths: [128, 256], mix: 'copy' },
  { until: 0.7, lengths: [256, 512] },
  { until: 0.8, lengths: [512, 1024] },
  { until: 0.93, lengths: [1024, 2048] },
  { until: 1.01, lengths: [2048, 4096] },
];

/** Short sequences only: the tiny configuration used by tests. */
export const TINY_CURRICULUM: CurriculumStage[] = [{ until: 1.01, lengths: [128] }];

export function stageAt(curriculum: CurriculumStage[], progress: number): CurriculumStage {
  return curriculum.find((s) => progress < s.until) ?? curriculum[curriculum.length - 1];
}

export function lengthFor(curriculum: CurriculumStage[], progress: number, rng: Rng, maxLength: number): number {
  return Math.min(maxLength, rng.pick(stageAt(curriculum, progress).lengths));
}

/**
 * The training batch of `step`: a pure function of (seed, step), so a resumed run sees exactly the data
 * an uninterrupted one would. About `tokens` tokens of one sequence length.
 */
export function trainingBatch(
  corpus: Corpus,
  seed: number,
  step: number,
  progress: number,
  tokens: number,
  curriculum: CurriculumStage[],
  maxLength: number,
  vocab: TrainVocab = BYTE_VOCAB,
): Batch {
  const rng = new Rng((seed * 1000003 + step * 7919) >>> 0);
  const length = lengthFor(curriculum, progress, rng, maxLength);
  const count = Math.max(1, Math.round(tokens / length));
  const samples: Encoded[] = [];
  const mix = MIXES[stageAt(curriculum, progress).mix ?? 'default'] ?? TASK_MIX;
  for (let i = 0; i < count; i++) samples.push(makeSample(rng, corpus, 'train', pickTask(rng, mix), length, vocab));
  if (vocab.charsPerToken !== 1) {
    // subword samples come out shorter than asked more often: fill the step's token budget
    let rows = samples.reduce((a, s) => a + s.ids.length - 1, 0);
    while (tokens - rows >= 64) {
      const s = makeSample(rng, corpus, 'train', pickTask(rng, mix), Math.min(length, tokens - rows), vocab);
      samples.push(s);
      rows += s.ids.length - 1;
    }
  }
  return packBatch(samples);
}

export { TASKS };
