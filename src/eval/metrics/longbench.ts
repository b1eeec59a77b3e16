import { pyFindDigits } from './python-text.js';
import { SequenceMatcher, fuzzRatio } from './sequence-matcher.js';

/**
 * LongBench's task-specific scores (metrics.py), each 0..1 for one prediction and one reference,
 * including the reference code's quirks where they change a score.
 */

/** `count_score`: share of the numbers in the prediction equal to the reference. */
export function countScore(prediction: string, reference: string): number {
  const numbers = pyFindDigits(prediction);
  if (numbers.length === 0) return 0;
  let right = 0;
  for (const n of numbers) if (n === reference) right++;
  return right / numbers.length;
}

/** `retrieval_score`: like count_score against the N of "Paragraph N" in the reference. */
export function retrievalScore(prediction: string, reference: string): number {
  const m = /Paragraph (\p{Nd}+)/u.exec(reference);
  if (!m) return 0; // the reference code would raise here; no paragraph id means no credit
  return countScore(prediction, m[1]);
}

/**
 * `code_sim_score`: the first line of the prediction (leading newlines dropped) that holds no "`", "#"
 * or "//", compared with fuzz.ratio.
 */
export function codeSimScore(prediction: string, reference: string): number {
  const lines = prediction.replace(/^\n+/, '').split('\n');
  let line = '';
  for (const l of lines) {
    if (!l.includes('`') && !l.includes('#') && !l.includes('//')) {
      line = l;
      break;
    }
  }
  return fuzzRatio(line, reference) / 100;
}

/**
 * `classification_score`. Class names found in the prediction; those contained in (but not equal to)
 * the reference are dropped while iterating, which in Python skips the element after each removal.
 * The reference's `em_match_list != 0` test is always true, so the difflib fallback never runs.
 */
export function classificationScore(prediction: string, reference: string, allClasses: readonly string[]): number {
  const matches = allClasses.filter((c) => prediction.includes(c));
  // Python's list iterator over a list that shrinks: the index moves on after every step
  for (let i = 0; i < matches.length; i++) {
    const term = matches[i];
    if (reference.includes(term) && term !== reference) {
      matches.splice(matches.indexOf(term), 1);
    }
  }
  return matches.includes(reference) ? 1 / matches.length : 0;
}

/** difflib ratio, as classification_score's (unreachable) fallback and edit-distance users need. */
export function difflibRatio(a: string, b: string): number {
  return new SequenceMatcher(a, b).ratio();
}
