import { Rng } from '../util/rng.js';
import { crossEntropy } from '../autograd/ops/cross-entropy.js';
import type { TrainModel } from './model.js';
import type { Corpus } from './data/corpus.js';
import { encodeDialogue, type Encoded } from './data/encode.js';
import { insertAtDepths } from './data/haystack.js';
import { makeSample, packBatch } from './data/batch.js';
import { TASKS, type TaskName } from './data/tasks.js';
import { NIAH_NEEDLE, NIAH_QUESTION } from '../eval/datasets/split.js';
import { BYTE_VOCAB, type TrainVocab } from './data/vocab.js';

/** The needle benchmark's sample: held-out essays from their start, the fixed needle at `depth`. */
export function niahSample(corpus: Corpus, length: number, depth: number, vocab: TrainVocab = BYTE_VOCAB): Encoded {
  const turns = [{ question: NIAH_QUESTION, answer: NIAH_NEEDLE }];
  let chars = Math.round((length - 80) * vocab.charsPerToken) - NIAH_NEEDLE.length;
  for (;;) {
    const context = insertAtDepths(corpus.heldOutText.slice(0, chars), [{ sentence: NIAH_NEEDLE, depth }]);
    const enc = encodeDialogue({ task: 'niah_place', context, turns }, vocab);
    if (enc.ids.length <= length + 1) return enc;
    const over = enc.ids.length - length - 1;
    chars -= vocab.charsPerToken === 1 ? over : Math.ceil(over * vocab.charsPerToken) + 4;
  }
}

export interface SampleScore {
  /** every answer token is the argmax: greedy decoding would produce the answer exactly */
  exact: number;
  /** fraction of answer tokens that are the argmax */
  tokenAccuracy: number;
  /** weighted loss over the whole sample (nats per token) */
  loss: number;
  tokens: number;
}

/** Teacher-forced scores of each sample (forward passes only, packed up to `maxTokens` rows). */
export function scoreSamples(model: TrainModel, samples: Encoded[], maxTokens = 8192): SampleScore[] {
  const out: SampleScore[] = [];
  let i = 0;
  while (i < samples.length) {
    const group: Encoded[] = [];
    let rows = 0;
    while (i < samples.length && (group.length === 0 || rows + samples[i].ids.length - 1 <= maxTokens)) {
      rows += samples[i].ids.length - 1;
      group.push(samples[i++]);
    }
    const batch = packBatch(group);
    const logits = model.logits(null, batch);
    const { rowLoss, argmax } = crossEntropy(null, logits, batch.targets, batch.weights);
    let o = 0;
    for (const s of group) {
      const n = s.ids.length - 1;
      let exact = 0,
        correct = 0,
        total = 0;
      for (const a of s.answers) {
        let ok = true;
        for (let t = a.start; t < a.end; t++) {
          const hit = argmax[o + t] === batch.targets[o + t];
          correct += hit ? 1 : 0;
          total++;
          if (!hit) ok = false;
        }
        exact += ok ? 1 : 0;
      }
      let ls = 0,
        ws = 0;
      for (let t = 0; t < n; t++) {
        ls += rowLoss[o + t] * batch.weights[o + t];
        ws += batch.weights[o + t];
      }
      out.push({
        exact: s.answers.length ? exact / s.answers.length : 0,
        tokenAccuracy: total ? correct / total : 0,
        loss: ws ? ls / ws : 0,
        tokens: n,
      });
      o += n;
    }
  }
  return out;
}

export interface HeldOutReport {
  /** needle exact match by context length, averaged over depths */
  niah: Record<string, number>;
  /** needle answer token accuracy by length */
  niahTokens: Record<string, number>;
  /** exact match per synthetic task (held-out wordings and keys) */
  tasks?: Record<string, number>;
  /** held-out essay perplexity (per token of the model's vocabulary) */
  perplexity?: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** Needle accuracy at the given lengths and depths; optionally per-task accuracy and perplexity. */
export function evaluateHeldOut(
  model: TrainModel,
  corpus: Corpus,
  opts: { lengths: number[]; depths: number[]; tasks?: { length: number; perTask: number }; perplexityTokens?: number },
  vocab: TrainVocab = BYTE_VOCAB,
): HeldOutReport {
  const report: HeldOutReport = { niah: {}, niahTokens: {} };
  for (const L of opts.lengths) {
    const scores = scoreSamples(
      model,
      opts.depths.map((d) => niahSample(corpus, L, d, vocab)),
    );
    report.niah[L] = mean(scores.map((s) => s.exact));
    report.niahTokens[L] = mean(scores.map((s) => s.tokenAccuracy));
  }
  if (opts.tasks) {
    const rng = new Rng(4242);
    report.tasks = {};
    const names: TaskName[] = TASKS.filter((t) => t !== 'instruct' && t !== 'repeat');
    for (const t of names) {
      const samples = Array.from({ length: opts.tasks.perTask }, () => makeSample(rng, corpus, 'heldout', t, opts.tasks!.length, vocab));
      report.tasks[t] = mean(scoreSamples(model, samples).map((s) => s.exact));
    }
  }
  if (opts.perplexityTokens) {
    const L = 1024,
      samples: Encoded[] = [];
    const text = corpus.heldOutText;
    const ids = Int32Array.from(vocab.encode(text.slice(0, Math.ceil((opts.perplexityTokens + 2 * L) * vocab.charsPerToken * 1.5))));
    for (let off = 0; off + L + 1 <= ids.length && samples.length * L < opts.perplexityTokens; off += L) {
      samples.push({ ids: ids.subarray(off, off + L + 1), weights: new Float32Array(L).fill(1), answers: [], task: 'text' });
    }
    const scores = scoreSamples(model, samples);
    report.perplexity = Math.exp(mean(scores.map((s) => s.loss)));
  }
  return report;
}
