import { KvevictError } from '../../errors.js';
import type { EvalCase, LoadedDataset } from '../case.js';
import type { TextTokenizer } from '../prompt.js';

/** The classic needle and question (gkamradt/LLMTest_NeedleInAHaystack). */
export const CLASSIC_NEEDLE = 'The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.';
export const CLASSIC_QUESTION = 'What is the best thing to do in San Francisco?';

export interface Needle {
  needle: string;
  question: string;
  /** gold answers; the needle itself when absent */
  answers?: string[];
}

export interface NeedleGrid {
  tokenizer: TextTokenizer;
  haystack: string;
  /** haystack + needle lengths in tokens */
  lengths: number[];
  /** depths in percent, 0 (start) to 100 (end) */
  depths: number[];
  needles: Needle[];
}

/** Default depths: 0, 25, 50, 75, 100 percent. */
export const DEFAULT_DEPTHS = [0, 25, 50, 75, 100];

/**
 * Insert `needle` into `hay` (token ids) at `depth` percent, moved back to just after the nearest
 * sentence end (a "." token) as LLMTest_NeedleInAHaystack does (at 100% too, where LLMTest appends);
 * the haystack is first cut so that haystack + needle is exactly `length` tokens.
 */
export function insertNeedle(
  hay: ArrayLike<number>,
  needle: ArrayLike<number>,
  periods: ReadonlySet<number>,
  length: number,
  depth: number,
): { tokens: Int32Array; at: number } {
  const ctxLen = length - needle.length;
  if (ctxLen < 0) throw new KvevictError(`niah: length ${length} is shorter than the needle (${needle.length} tokens)`);
  if (hay.length < ctxLen)
    throw new KvevictError(`niah: the haystack has ${hay.length} tokens, fewer than the ${ctxLen} needed for length ${length}`);
  let at = depth >= 100 ? ctxLen : Math.floor((ctxLen * depth) / 100);
  while (at > 0 && !periods.has(hay[at - 1])) at--;
  const out = new Int32Array(length);
  for (let i = 0; i < at; i++) out[i] = hay[i];
  for (let i = 0; i < needle.length; i++) out[at + i] = needle[i];
  for (let i = at; i < ctxLen; i++) out[needle.length + i] = hay[i];
  return { tokens: out, at };
}

/**
 * The needle-in-a-haystack grid: for every length, needle and depth, a context of exactly `length`
 * tokens (by the model's tokenizer) with the needle at a sentence boundary, the question asked after it.
 */
export function needleDataset(grid: NeedleGrid, name = 'niah'): LoadedDataset {
  const { tokenizer } = grid;
  if (grid.lengths.length === 0 || grid.depths.length === 0 || grid.needles.length === 0)
    throw new KvevictError('niah: empty grid (no lengths, depths or needles)');
  for (const d of grid.depths) if (!(d >= 0 && d <= 100)) throw new KvevictError(`niah: depth ${d} is outside 0..100`);
  const maxLen = Math.max(...grid.lengths);
  let hayText = grid.haystack;
  let hay = tokenizer.encode(hayText);
  if (hay.length === 0) throw new KvevictError('niah: the haystack is empty');
  // repeat the haystack, as LLMTest does, until it is long enough
  while (hay.length < maxLen) {
    hayText = `${hayText}\n\n${grid.haystack}`;
    hay = tokenizer.encode(hayText);
  }
  const periodIds = tokenizer.encode('.');
  const periods = new Set<number>([periodIds[periodIds.length - 1]]);
  const cases: EvalCase[] = [];
  grid.needles.forEach((n, ni) => {
    const needleIds = tokenizer.encode(` ${n.needle}`);
    const answers = n.answers && n.answers.length > 0 ? n.answers : [n.needle];
    for (const length of grid.lengths) {
      for (const depth of grid.depths) {
        const { tokens, at } = insertNeedle(hay, needleIds, periods, length, depth);
        cases.push({
          id: `niah-L${length}-D${depth}${grid.needles.length > 1 ? `-N${ni}` : ''}`,
          task: 'niah',
          before: '',
          context: tokenizer.decode(tokens),
          after: `\n\n${n.question}`,
          question: n.question,
          answers,
          scoring: { metric: 'needle_recall' },
          maxNewTokens: tokenizer.encode(n.needle).length + 16,
          chat: true,
          answerPrefix: '',
          meta: { length, depth, needleAt: at, needle: ni },
        });
      }
    }
  });
  return { name, cases, problems: [] };
}
