import { normalizeAnswer } from './normalize.js';
import { pySplit } from './python-text.js';

/** LongBench `f1_score` over two token lists (multiset overlap), 0..1. */
export function tokenF1(prediction: readonly string[], reference: readonly string[]): number {
  const counts = new Map<string, number>();
  for (const t of reference) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of prediction) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / prediction.length;
  const recall = same / reference.length;
  return (2 * precision * recall) / (precision + recall);
}

/** LongBench `qa_f1_score`: token F1 of the normalized answers, 0..1. */
export function qaF1Score(prediction: string, reference: string): number {
  return tokenF1(pySplit(normalizeAnswer(prediction)), pySplit(normalizeAnswer(reference)));
}

/** Exact match of the normalized answers (SQuAD EM), 0 or 1. */
export function exactMatch(prediction: string, reference: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(reference) ? 1 : 0;
}
