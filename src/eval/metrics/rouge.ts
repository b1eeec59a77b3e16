import { pySplit } from './python-text.js';

/**
 * ROUGE as the Python `rouge` package (pltrdy/rouge 1.0.x, exclusive mode) computes it, which is what
 * LongBench's `rouge_score` calls: texts are cut into "sentences" on ".", words are split on single
 * spaces, n-grams are counted as sets, and ROUGE-L is the summary-level union-LCS over sentence pairs.
 */

export interface RougeFigures {
  f: number;
  p: number;
  r: number;
}

/** `[" ".join(s.split()) for s in text.split(".") if len(s) > 0]` */
export function rougeSentences(text: string): string[] {
  return text
    .split('.')
    .filter((s) => s.length > 0)
    .map((s) => pySplit(s).join(' '));
}

function words(sentences: readonly string[]): string[] {
  const out: string[] = [];
  for (const s of sentences) for (const w of s.split(' ')) out.push(w);
  return out;
}

function ngramSet(n: number, tokens: readonly string[]): Set<string> {
  const set = new Set<string>();
  // \u0000 cannot occur inside a word, so joined keys are unambiguous
  for (let i = 0; i + n <= tokens.length; i++) set.add(tokens.slice(i, i + n).join('\u0000'));
  return set;
}

function figures(evaluated: number, reference: number, overlap: number): RougeFigures {
  const p = evaluated === 0 ? 0 : overlap / evaluated;
  const r = reference === 0 ? 0 : overlap / reference;
  return { f: 2 * ((p * r) / (p + r + 1e-8)), p, r };
}

/** The package's error cases, raised as exceptions there. */
export class RougeInputError extends Error {}

/** rouge_n over sentence lists. */
export function rougeN(evaluated: readonly string[], reference: readonly string[], n: number): RougeFigures {
  if (evaluated.length === 0) throw new RougeInputError('Hypothesis is empty.');
  if (reference.length === 0) throw new RougeInputError('Reference is empty.');
  const e = ngramSet(n, words(evaluated));
  const r = ngramSet(n, words(reference));
  let overlap = 0;
  for (const g of e) if (r.has(g)) overlap++;
  return figures(e.size, r.size, overlap);
}

/** The words of one LCS of x and y, walked back exactly as `_recon_lcs` does (ties go left). */
export function reconLcs(x: readonly string[], y: readonly string[]): string[] {
  const n = x.length;
  const m = y.length;
  const w = m + 1;
  const table = new Int32Array((n + 1) * w);
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      table[i * w + j] = x[i - 1] === y[j - 1] ? table[(i - 1) * w + j - 1] + 1 : Math.max(table[(i - 1) * w + j], table[i * w + j - 1]);
    }
  }
  const out: string[] = [];
  let i = n;
  let j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] === y[j - 1]) {
      out.push(x[i - 1]);
      i--;
      j--;
    } else if (table[(i - 1) * w + j] > table[i * w + j - 1]) {
      i--;
    } else {
      j--;
    }
  }
  return out.reverse();
}

/** rouge_l_summary_level over sentence lists. */
export function rougeLSummaryLevel(evaluated: readonly string[], reference: readonly string[]): RougeFigures {
  if (evaluated.length === 0 || reference.length === 0) throw new RougeInputError('Collections must contain at least 1 sentence.');
  const m = new Set(words(reference)).size;
  const n = new Set(words(evaluated)).size;
  const union = new Set<string>();
  for (const refSentence of reference) {
    const refWords = refSentence.split(' ');
    for (const evalSentence of evaluated) for (const word of reconLcs(refWords, evalSentence.split(' '))) union.add(word);
  }
  const llcs = union.size;
  const r = llcs / m;
  const p = llcs / n;
  return { f: 2 * ((p * r) / (p + r + 1e-8)), p, r };
}

export interface RougeScores {
  'rouge-1': RougeFigures;
  'rouge-2': RougeFigures;
  'rouge-l': RougeFigures;
}

/** `Rouge().get_scores([hyp], [ref], avg=True)`; throws RougeInputError where the package raises. */
export function rougeGetScores(hyp: string, ref: string): RougeScores {
  const h = rougeSentences(hyp);
  const r = rougeSentences(ref);
  return { 'rouge-1': rougeN(h, r, 1), 'rouge-2': rougeN(h, r, 2), 'rouge-l': rougeLSummaryLevel(h, r) };
}

/** LongBench `rouge_score`: ROUGE-L F, 0 where the package raises (an empty prediction). 0..1 */
export function rougeLScore(prediction: string, reference: string): number {
  try {
    return rougeGetScores(prediction, reference)['rouge-l'].f;
  } catch (e) {
    if (e instanceof RougeInputError) return 0;
    throw e;
  }
}

/** ROUGE-1 F of the same package, 0 on an empty prediction. 0..1 */
export function rouge1Score(prediction: string, reference: string): number {
  try {
    return rougeGetScores(prediction, reference)['rouge-1'].f;
  } catch (e) {
    if (e instanceof RougeInputError) return 0;
    throw e;
  }
}
