import { PY_PUNCTUATION, pySplit } from './python-text.js';

/** Python's \b around a word, for str patterns: a word character is a letter, a digit or "_". */
const ARTICLES = /(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu;

/**
 * LongBench / SQuAD `normalize_answer`: lower case, drop punctuation, drop the articles a/an/the,
 * collapse whitespace.
 */
export function normalizeAnswer(s: string): string {
  const lower = s.toLowerCase();
  let noPunc = '';
  for (const ch of lower) if (!PY_PUNCTUATION.has(ch)) noPunc += ch;
  const noArticles = noPunc.replace(ARTICLES, ' ');
  return pySplit(noArticles).join(' ');
}
