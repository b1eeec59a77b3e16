import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KvevictError } from '../../errors.js';
import { sharedData } from '../../paths.js';
import { heldOutHaystack } from './split.js';

export const essayDir = join(sharedData, 'haystack', 'PaulGrahamEssays');

/** Every essay, in name order, joined by blank lines: the haystack for models that never saw them in training. */
export function allEssaysHaystack(): string {
  if (!existsSync(essayDir)) throw new KvevictError(`${essayDir}: essay folder not found (expected ../shared/data beside the repository)`);
  const files = readdirSync(essayDir)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  return files.map((f) => readFileSync(join(essayDir, f), 'utf8')).join('\n\n');
}

/**
 * The haystack text: the held-out essays for the embedded reference model (its training never read
 * them), every essay for any other model.
 */
export function haystackText(embeddedModel: boolean): string {
  return embeddedModel ? heldOutHaystack() : allEssaysHaystack();
}

/**
 * Sentence split in the spirit of NLTK's sent_tokenize (which RULER uses): a sentence ends at ".", "!"
 * or "?" (with closing quotes or brackets) followed by whitespace, unless the word before the dot is a
 * common abbreviation or a single letter.
 */
const ABBREVIATIONS = new Set([
  'mr',
  'mrs',
  'ms',
  'dr',
  'prof',
  'sr',
  'jr',
  'st',
  'vs',
  'etc',
  'e.g',
  'i.e',
  'inc',
  'ltd',
  'co',
  'no',
  'vol',
  'fig',
]);

export function splitSentences(text: string): string[] {
  const out: string[] = [];
  const re = /[.!?]["')\]]*\s+/g;
  let start = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const end = m.index + m[0].length;
    if (text[m.index] === '.') {
      const before = text.slice(start, m.index).match(/([\p{L}.]+)$/u);
      const word = before ? before[1].toLowerCase() : '';
      if (ABBREVIATIONS.has(word) || /^\p{L}$/u.test(word)) continue;
    }
    const s = text.slice(start, end).trim();
    if (s) out.push(s);
    start = end;
  }
  const rest = text.slice(start).trim();
  if (rest) out.push(rest);
  return out;
}

/** RULER's essay words: `re.sub(r'\s+', " ", essay).split(" ")`. */
export function essayWords(text: string): string[] {
  return text.replace(/\s+/g, ' ').split(' ');
}
