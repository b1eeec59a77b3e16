import { KvevictError } from '../../../errors.js';
import { Rng } from '../../../util/rng.js';
import type { EvalCase, LoadedDataset } from '../../case.js';
import { chatWrapper, type TextTokenizer } from '../../prompt.js';
import { essayWords } from '../haystack.js';
import { cweSample } from './cwe.js';
import { largestFitting } from './fit.js';
import { fweSample, fweVocab } from './fwe.js';
import { niahSample } from './niah.js';
import { loadQaSource, qaSample } from './qa.js';
import { mixSeed } from './random.js';
import { sampleText, type RulerSample } from './sample.js';
import { RULER_FAMILIES, rulerMetric, rulerTask } from './tasks.js';
import { randomizeIcl, vtIclText, vtSample } from './vt.js';

export interface RulerOptions {
  tokenizer: TextTokenizer;
  /** prompt + generated tokens, as RULER's max_seq_length */
  maxSeqLength: number;
  numSamples: number;
  seed: number;
  /** haystack text for the essay tasks */
  essay: string;
  /** SQuAD / HotpotQA JSON for qa_1 / qa_2 */
  qaFile?: string;
  /** wrap prompts in the chat template (its tokens count against the length) */
  chat?: boolean;
}

/** Sample number `index` of size n, drawn from `rng`. */
type Gen = (n: number, rng: Rng, index: number) => RulerSample;

/**
 * Generate a RULER task in TypeScript with RULER's templates: size the haystack by binary search so that
 * prompt + answer fit `maxSeqLength` tokens of the model's tokenizer, then draw `numSamples` samples,
 * each from its own seeded stream (shrinking a sample that comes out too long, as RULER does).
 */
export function rulerDataset(task: string, opts: RulerOptions): LoadedDataset {
  const spec = rulerTask(task, 'ruler');
  const fam = RULER_FAMILIES[spec.family];
  const tok = opts.tokenizer;
  const chat = opts.chat ?? true;
  const wrap = chat ? chatWrapper(tok) : null;
  const overhead = wrap ? tok.encode(wrap.header).length + tok.encode(wrap.footer).length : 0;
  const budget = opts.maxSeqLength - fam.tokensToGenerate - overhead;
  const count = (s: RulerSample) => tok.encode(sampleText(s)).length;
  const tooShort = () => new KvevictError(`ruler:${task}: a context of ${opts.maxSeqLength} tokens is too short for this task`);
  if (budget <= 0) throw tooShort();

  let gen: Gen;
  let lower = 1;
  let start = 64;
  switch (spec.family) {
    case 'niah': {
      const words = essayWords(opts.essay);
      const a = spec.args;
      gen = (n, rng) => niahSample(a, n, rng, words);
      lower = a.typeHaystack === 'essay' ? 1 : Math.max(a.numNeedleK, a.numNeedleQ) * a.numNeedleV;
      start = a.typeHaystack === 'essay' ? 256 : 16;
      break;
    }
    case 'variable_tracking': {
      const { numChains, numHops } = spec.args;
      // RULER sizes its one-shot example to 500 tokens; a small context gives it a quarter of its length,
      // and leaves it out when even the shortest example does not fit there
      const iclBudget = Math.min(500, Math.floor(opts.maxSeqLength / 4));
      const iclRng = () => new Rng(mixSeed(opts.seed, task, 'icl'));
      const iclN = largestFitting((n) => count(vtSample(iclRng(), n, numChains, numHops, true, '')), iclBudget, 1, 4);
      const icl = iclN > 0 ? vtIclText(vtSample(iclRng(), iclN, numChains, numHops, true, '')) : null;
      gen = (n, rng) => vtSample(rng, n, numChains, numHops, false, icl === null ? '' : `${randomizeIcl(rng, icl, numHops)}\n`);
      lower = 1;
      start = 8;
      break;
    }
    case 'common_words_extraction': {
      const { freqCw, freqUcw, numCw } = spec.args;
      gen = (n, rng) => cweSample(rng, n, opts.maxSeqLength, freqCw, freqUcw, numCw, new Rng(opts.seed));
      lower = numCw + 1;
      start = 32;
      break;
    }
    case 'freq_words_extraction': {
      const vocabSize = Math.max(5, Math.floor((opts.maxSeqLength - fam.tokensToGenerate) / 50));
      const { alpha } = spec.args;
      gen = (n, rng) => fweSample(rng, fweVocab(rng, vocabSize), n, alpha);
      lower = 4;
      start = 64;
      break;
    }
    case 'qa': {
      const src = loadQaSource(spec.args.dataset, opts.qaFile, task);
      gen = (n, rng, index) => qaSample(rng, src, index, n);
      lower = 1;
      start = 4;
      break;
    }
  }
  return toDataset(task, opts, sizeAndDraw(task, opts, budget, count, gen, lower, start));
}

function sizeAndDraw(
  task: string,
  opts: RulerOptions,
  budget: number,
  count: (s: RulerSample) => number,
  gen: Gen,
  lower: number,
  start: number,
): { sample: RulerSample; size: number }[] {
  const probe = () => new Rng(mixSeed(opts.seed, task, 'probe'));
  const n = largestFitting((k) => count(gen(k, probe(), 0)), budget, lower, start);
  if (n === 0) throw new KvevictError(`ruler:${task}: a context of ${opts.maxSeqLength} tokens is too short for this task`);
  const out: { sample: RulerSample; size: number }[] = [];
  const step = Math.max(1, Math.floor(n / 20));
  for (let i = 0; i < opts.numSamples; i++) {
    let size = n;
    for (let attempt = 0; ; attempt++) {
      const s = gen(size, new Rng(mixSeed(opts.seed, task, i, attempt)), i);
      if (count(s) <= budget || size <= lower) {
        out.push({ sample: s, size });
        break;
      }
      size = Math.max(lower, size - step);
    }
  }
  return out;
}

function toDataset(task: string, opts: RulerOptions, drawn: { sample: RulerSample; size: number }[]): LoadedDataset {
  const spec = rulerTask(task, 'ruler');
  const fam = RULER_FAMILIES[spec.family];
  const cases: EvalCase[] = drawn.map(({ sample: s, size }, i) => ({
    id: `${task}-L${opts.maxSeqLength}-${i}`,
    task: `ruler:${task}`,
    before: s.before,
    context: s.context,
    after: s.after,
    question: s.question,
    answers: s.answers,
    scoring: { metric: rulerMetric(spec.family) },
    maxNewTokens: fam.tokensToGenerate,
    chat: opts.chat ?? true,
    answerPrefix: s.answerPrefix,
    meta: { length: opts.maxSeqLength, size },
  }));
  return { name: `ruler:${task}`, cases, problems: [] };
}
