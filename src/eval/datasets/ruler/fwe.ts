import type { Rng } from '../../../util/rng.js';
import { LOWER, choices } from './random.js';
import { splitTemplate, type RulerSample } from './sample.js';
import { RULER_FAMILIES } from './tasks.js';

/** Riemann zeta for s > 1 (Euler-Maclaurin tail after 64 terms; exact to double precision for s >= 1.5). */
export function zeta(s: number): number {
  const N = 64;
  let sum = 0;
  for (let k = 1; k < N; k++) sum += k ** -s;
  // tail: integral + half term + first Bernoulli corrections
  sum += N ** (1 - s) / (s - 1) + 0.5 * N ** -s + (s * N ** (-s - 1)) / 12 - (s * (s + 1) * (s + 2) * N ** (-s - 3)) / 720;
  return sum;
}

/** The coded vocabulary: `size` distinct 6-letter words, sorted then shuffled, the first one replaced by "...". */
export function fweVocab(rng: Rng, size: number, wordLen = 6): string[] {
  const set = new Set<string>();
  while (set.size < size) set.add(choices(rng, LOWER, wordLen));
  const vocab = rng.shuffle([...set].sort());
  vocab[0] = '...';
  return vocab;
}

/**
 * One frequent-words sample of RULER (scripts/data/synthetic/freq_words_extraction.py): word k of the
 * vocabulary appears int(numWords * k^-alpha / zeta(alpha)) times, shuffled; the answer is words 2..4
 * (the most frequent one is the "..." noise).
 */
export function fweSample(rng: Rng, vocab: readonly string[], numWords: number, alpha: number): RulerSample {
  const z = zeta(alpha);
  const words: string[] = [];
  vocab.forEach((w, i) => {
    const count = Math.trunc((numWords * (i + 1) ** -alpha) / z);
    for (let c = 0; c < count; c++) words.push(w);
  });
  rng.shuffle(words);
  const fam = RULER_FAMILIES.freq_words_extraction;
  const [pre, post] = splitTemplate(fam.template);
  return {
    before: pre,
    context: words.join(' '),
    after: post,
    question: post.trim(),
    answers: vocab.slice(1, 4),
    answerPrefix: fam.answerPrefix,
  };
}
