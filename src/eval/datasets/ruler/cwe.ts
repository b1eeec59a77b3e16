import type { Rng } from '../../../util/rng.js';
import { sample } from './random.js';
import { splitTemplate, type RulerSample } from './sample.js';
import { RULER_FAMILIES } from './tasks.js';
import { ADJECTIVES, NOUNS, VERBS } from './words.js';

/** nouns + adjectives + verbs, sorted and deduplicated; adjective-noun pairs when a list needs more words. */
const BASE_WORDS: readonly string[] = [...new Set([...NOUNS, ...ADJECTIVES, ...VERBS])].sort();
const MORE_WORDS: readonly string[] = ADJECTIVES.flatMap((a) => NOUNS.map((n) => `${a}-${n}`));

function numbered(words: readonly string[]): string {
  return words.map((w, i) => `${i + 1}. ${w}`).join(' ');
}

/** get_example: `numCw` common words repeated `common` times, the rest `uncommon` times, shuffled and numbered. */
function example(
  rng: Rng,
  words: readonly string[],
  numWords: number,
  common: number,
  uncommon: number,
  numCw: number,
): { context: string; answer: string[] } {
  const pool = numWords <= words.length ? words : MORE_WORDS;
  const full = sample(rng, pool, Math.min(numWords, pool.length));
  const cw = full.slice(0, numCw);
  const ucw = full.slice(numCw);
  const list: string[] = [];
  for (let r = 0; r < common; r++) list.push(...cw);
  for (let r = 0; r < uncommon; r++) list.push(...ucw);
  rng.shuffle(list);
  return { context: numbered(list), answer: cw };
}

/**
 * One common-words sample of RULER (scripts/data/synthetic/common_words_extraction.py) with `numWords`
 * distinct words; below 4096 tokens RULER uses 6/1 repeats and a 3/1 one-shot example of 20 words,
 * from 4096 on `freqCw`/`freqUcw` repeats and a 10/3 example of 40 words.
 */
export function cweSample(
  rng: Rng,
  numWords: number,
  maxSeqLength: number,
  freqCw: number,
  freqUcw: number,
  numCw: number,
  wordsSeed: Rng,
): RulerSample {
  const words = wordsSeed.shuffle(BASE_WORDS.slice());
  const fam = RULER_FAMILIES.common_words_extraction;
  const [pre, post] = splitTemplate(fam.template);
  const small = maxSeqLength < 4096;
  const shot = small ? example(rng, words, 20, 3, 1, numCw) : example(rng, words, 40, 10, 3, numCw);
  const main = small ? example(rng, words, numWords, 6, 1, numCw) : example(rng, words, numWords, freqCw, freqUcw, numCw);
  const shotText = `${pre}${shot.context}${post}${fam.answerPrefix} ${numbered(shot.answer)}`;
  return {
    before: `${shotText}\n${pre}`,
    context: main.context,
    after: post,
    question: post.trim(),
    answers: main.answer,
    answerPrefix: fam.answerPrefix,
  };
}
