import type { Rng } from '../../util/rng.js';
import type { Corpus } from './corpus.js';
import { haystackSlice, noiseSlice } from './haystack.js';
import type { Split } from '../../eval/datasets/split.js';
import { capitalize, randomDigits } from './words.js';

/**
 * The kinds of text needles are hidden in. Training and held-out evaluation use different kinds, not only
 * different text: `table` and `user-instructions` haystacks are never trained on, and essays and LongBench
 * documents come from disjoint halves of the shared data.
 */
export const TRAIN_HAYSTACKS = ['essay', 'news', 'instructions', 'noise', 'prose', 'list', 'records', 'code'] as const;
export const HELD_OUT_HAYSTACKS = ['essay', 'news', 'table', 'user-instructions'] as const;
export type HaystackKind = (typeof TRAIN_HAYSTACKS)[number] | (typeof HELD_OUT_HAYSTACKS)[number];

/** Weights of the training kinds: natural text most, the generated kinds each a little. */
const TRAIN_WEIGHTS: Record<(typeof TRAIN_HAYSTACKS)[number], number> = {
  essay: 0.3,
  news: 0.2,
  instructions: 0.1,
  noise: 0.1,
  prose: 0.1,
  list: 0.07,
  records: 0.07,
  code: 0.06,
};

export function pickHaystackKind(rng: Rng, split: Split): HaystackKind {
  if (split === 'heldout') return rng.pick(HELD_OUT_HAYSTACKS);
  let r = rng.next();
  for (const k of TRAIN_HAYSTACKS) if ((r -= TRAIN_WEIGHTS[k]) < 0) return k;
  return 'essay';
}

/** About `chars` characters of haystack of one kind. */
export function haystackOfKind(kind: HaystackKind, rng: Rng, corpus: Corpus, split: Split, chars: number): string {
  if (chars <= 0) return '';
  const words = split === 'train' ? corpus.trainWords : corpus.heldOutWords;
  switch (kind) {
    case 'essay':
      return haystackSlice(rng, split === 'train' ? corpus.trainText : corpus.heldOutText, chars);
    case 'news':
      return documents(rng, split === 'train' ? corpus.longbenchTrain : corpus.longbenchHeldOut, chars);
    case 'instructions':
      return documents(rng, corpus.instructTexts, chars);
    case 'user-instructions':
      return documents(rng, corpus.heldOutInstructTexts, chars);
    case 'noise':
      return noiseSlice(chars);
    case 'prose':
      return generated(chars, () => proseSentence(rng, words));
    case 'list': {
      let i = 0;
      return generated(chars, () => `${++i}. ${phrase(rng, words, 1 + rng.int(4))}\n`);
    }
    case 'records':
      return generated(chars, () => recordLine(rng, words));
    case 'code':
      return generated(chars, () => codeLine(rng, words));
    case 'table':
      return tableText(rng, words, chars);
  }
}

/** Whole documents (or pieces of one) joined until `chars` is reached. */
function documents(rng: Rng, docs: readonly string[], chars: number): string {
  if (docs.length === 0) return noiseSlice(chars);
  let out = '';
  while (out.length < chars) {
    const d = rng.pick(docs);
    const need = chars - out.length;
    const start = d.length > need ? rng.int(d.length - need + 1) : 0;
    const dot = start > 0 ? d.indexOf('. ', start) : -1;
    const from = dot >= 0 && dot - start < 200 ? dot + 2 : start;
    out += (out ? '\n\n' : '') + d.slice(from, from + need);
  }
  return out.slice(0, chars);
}

function generated(chars: number, next: () => string): string {
  let out = '';
  while (out.length < chars) out += next();
  return out.slice(0, chars);
}

function phrase(rng: Rng, words: readonly string[], n: number): string {
  return Array.from({ length: n }, () => rng.pick(words)).join(' ');
}

const SUBJECTS = [
  'The farmer',
  'A teacher',
  'My neighbor',
  'The old man',
  'Our team',
  'The committee',
  'A child',
  'The driver',
  'Her sister',
  'The council',
];
const VERBS = ['visited', 'painted', 'discussed', 'ignored', 'repaired', 'described', 'borrowed', 'measured', 'praised', 'moved'];
const LINKS = ['because', 'although', 'after', 'before', 'while', 'and then', 'so', 'but'];

/** A plain generated sentence: varied structure, essay vocabulary. */
function proseSentence(rng: Rng, words: readonly string[]): string {
  const obj = () => `the ${rng.pick(words)}`;
  switch (rng.int(4)) {
    case 0:
      return `${rng.pick(SUBJECTS)} ${rng.pick(VERBS)} ${obj()}. `;
    case 1:
      return `${rng.pick(SUBJECTS)} ${rng.pick(VERBS)} ${obj()} ${rng.pick(LINKS)} ${rng.pick(SUBJECTS).toLowerCase()} ${rng.pick(VERBS)} ${obj()}. `;
    case 2:
      return `${capitalize(rng.pick(words))} is ${rng.pick(['rarely', 'often', 'never', 'sometimes', 'always'])} ${rng.pick(words)} in ${rng.pick(['winter', 'the city', 'the morning', 'practice', 'theory'])}. `;
    default:
      return `There were ${2 + rng.int(40)} ${rng.pick(words)}s near the ${rng.pick(words)}, ${rng.pick(['said', 'wrote', 'claimed', 'noted'])} ${rng.pick(SUBJECTS).toLowerCase()}. `;
  }
}

function recordLine(rng: Rng, words: readonly string[]): string {
  return (
    `Name: ${capitalize(rng.pick(words))} ${capitalize(rng.pick(words))}; City: ${capitalize(rng.pick(words))}; Age: ${18 + rng.int(70)}; ` +
    `Status: ${rng.pick(['active', 'closed', 'pending', 'archived'])}; Balance: ${randomDigits(rng, 1 + rng.int(5))}\n`
  );
}

function codeLine(rng: Rng, words: readonly string[]): string {
  const id = () => rng.pick(words).replace(/[^a-z]/g, '') || 'x';
  switch (rng.int(5)) {
    case 0:
      return `def ${id()}_${id()}(${id()}, ${id()}):\n    return ${id()} + ${rng.int(100)}\n\n`;
    case 1:
      return `${id()} = [${Array.from({ length: 1 + rng.int(5) }, () => rng.int(1000)).join(', ')}]\n`;
    case 2:
      return `if ${id()} > ${rng.int(50)}:\n    print("${phrase(rng, words, 2)}")\n`;
    case 3:
      return `for ${id()} in range(${1 + rng.int(20)}):\n    ${id()}.append(${id()})\n`;
    default:
      return `# ${phrase(rng, words, 3 + rng.int(5))}\n`;
  }
}

function tableText(rng: Rng, words: readonly string[], chars: number): string {
  let out = '| id | item | owner | count |\n|---|---|---|---|\n';
  while (out.length < chars) out += `| ${randomDigits(rng, 4)} | ${rng.pick(words)} | ${capitalize(rng.pick(words))} | ${rng.int(500)} |\n`;
  return out.slice(0, chars);
}
