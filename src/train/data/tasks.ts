import type { Split } from '../../eval/datasets/split.js';
import { Rng } from '../../util/rng.js';
import type { Corpus } from './corpus.js';
import { haystackSlice, insertAtDepths, noiseSlice } from './haystack.js';
import { haystackOfKind, pickHaystackKind } from './haystack-kinds.js';
import {
  ALL_QUESTIONS,
  ANSWERS,
  ASSIGNMENTS,
  COMMON_WORDS,
  CLOZE,
  FREQUENT_WORDS,
  INTROS,
  NEEDLES,
  QUESTIONS,
  VALUE_NOUNS,
  VT_ANSWERS,
  VT_QUESTIONS,
  pickWording,
  type Bank,
  type ValueKind,
} from './wordings.js';
import { HELD_OUT_PLACES, HELD_OUT_PLACE_WORDINGS, TRAIN_PLACE_WORDINGS, randomActivity, randomPlace } from './needles.js';
import { pseudoName, randomDigits, randomUuid } from './words.js';
import { NEVER_TRAINED } from '../../eval/datasets/split.js';

/** A chat: the first user turn is context + question; later turns ask more questions about the same context. */
export interface Dialogue {
  task: TaskName;
  context: string;
  turns: { question: string; answer: string }[];
}

/** Plain text trained on every token (no chat template). */
export interface PlainText {
  task: 'text';
  text: string;
}

export type Sample = Dialogue | PlainText;

export const TASKS = [
  'niah_place',
  'niah_multikey',
  'niah_multivalue',
  'niah_multiquery',
  'passkey',
  'variable_tracking',
  'common_words',
  'frequent_words',
  'instruct',
  'repeat',
  'cloze',
] as const;
export type TaskName = (typeof TASKS)[number];

export type { Split };

/** Bytes of template around each turn: "<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n", "<|im_end|>\n". */
const TURN_OVERHEAD = 40;

interface Ctx {
  rng: Rng;
  corpus: Corpus;
  split: Split;
  /** the text of the vocabulary's letter tokens (TrainVocab.pieces), where it has them */
  pieces?: readonly string[];
  /** target length in tokens (bytes) */
  length: number;
}

function words(c: Ctx): string[] {
  return c.split === 'train' ? c.corpus.trainWords : c.corpus.heldOutWords;
}

function budget(c: Ctx, needles: string[], turns: { question: string; answer: string }[]): number {
  let used = 2;
  for (const n of needles) used += n.length + 1;
  for (const t of turns) used += t.question.length + t.answer.length + TURN_OVERHEAD;
  return Math.max(0, c.length - used);
}

function distinct<T>(rng: Rng, n: number, make: () => T, key: (t: T) => string = String): T[] {
  const out: T[] = [],
    seen = new Set<string>();
  for (let tries = 0; out.length < n && tries < n * 20; tries++) {
    const t = make();
    if (!seen.has(key(t))) {
      seen.add(key(t));
      out.push(t);
    }
  }
  return out;
}

/** How many needles and questions fit densely at this length. */
function needleCount(c: Ctx, per: number, max: number): number {
  return Math.max(1, Math.min(max, Math.floor(c.length / per)));
}

/** Ask about `k` of the needles (distinct), each answered by restating it. */
function askSome<T>(rng: Rng, items: T[], k: number): T[] {
  return rng.shuffle(items.slice()).slice(0, Math.max(1, Math.min(k, items.length)));
}

function niahPlace(c: Ctx): Dialogue {
  const { rng } = c;
  const n = needleCount(c, 200, 10);
  const wordings = c.split === 'train' ? TRAIN_PLACE_WORDINGS : HELD_OUT_PLACE_WORDINGS;
  const places = distinct(rng, n, () => (c.split === 'train' ? randomPlace(rng, words(c)) : rng.pick(HELD_OUT_PLACES)));
  const items = places.map((p) => {
    const w = rng.pick(wordings);
    const sentence = w.needle(p, randomActivity(rng, words(c)));
    return { sentence, question: w.question(p), answer: sentence };
  });
  const turns = askSome(rng, items, 1 + rng.int(4)).map(({ question, answer }) => ({ question, answer }));
  return {
    task: 'niah_place',
    context: hideIn(
      c,
      budget(
        c,
        items.map((i) => i.sentence),
        turns,
      ),
      items.map((i) => i.sentence),
    ),
    turns,
  };
}

function value(c: Ctx, kind: ValueKind): string {
  if (kind === 'number') return randomDigits(c.rng, c.rng.next() < 0.6 ? 7 : 4 + c.rng.int(7));
  if (kind === 'uuid') return randomUuid(c.rng);
  return c.rng.pick(words(c));
}

function key(c: Ctx): string {
  const w = words(c);
  const r = c.rng.next();
  if (r < 0.4) return c.rng.pick(w);
  if (r < 0.85) return `${c.rng.pick(w)}-${c.rng.pick(w)}`;
  return randomUuid(c.rng);
}

/** A key-value family's wording drawn once per sample: the noun, the needle, questions, answer, and maybe an intro. */
function kvWording(c: Ctx, kind: ValueKind) {
  const [noun, nouns] = pickWording(c.rng, VALUE_NOUNS[kind], c.split);
  return {
    noun,
    nouns,
    needle: pickWording(c.rng, NEEDLES, c.split),
    question: pickWording(c.rng, QUESTIONS, c.split),
    all: pickWording(c.rng, ALL_QUESTIONS, c.split),
    answer: pickWording(c.rng, ANSWERS, c.split),
    intro: c.rng.next() < 0.5 ? pickWording(c.rng, INTROS, c.split)(nouns) : '',
  };
}

function withIntro(intro: string, context: string): string {
  return intro ? `${intro}\n${context}` : context;
}

/** Context text of `chars` characters with the sentences at random depths (in order where `ordered`). */
function hideIn(c: Ctx, chars: number, sentences: string[], ordered = false, distractors?: () => string): string {
  let hay: string;
  if (distractors) {
    hay = '';
    while (hay.length < chars) hay += distractors() + ' ';
  } else {
    hay = haystackOfKind(pickHaystackKind(c.rng, c.split), c.rng, c.corpus, c.split, chars);
  }
  const depths = sentences.map(() => c.rng.next());
  if (ordered) depths.sort((a, b) => a - b);
  return insertAtDepths(
    hay,
    sentences.map((sentence, i) => ({ sentence, depth: depths[i] })),
  );
}

function multikey(c: Ctx): Dialogue {
  const { rng } = c;
  const kind = rng.pick<ValueKind>(['number', 'number', 'word', 'uuid']);
  const w = kvWording(c, kind);
  const n = needleCount(c, kind === 'uuid' ? 160 : 110, 16);
  const keys = distinct(rng, n, () => key(c));
  const items = keys.map((k) => {
    const v = value(c, kind);
    const plural = rng.next() < 0.3;
    return {
      sentence: w.needle(w.noun, k, v),
      question: plural ? w.all(w.nouns, [k]) : w.question(w.noun, k),
      answer: w.answer(w.noun, w.nouns, [k], [v]),
    };
  });
  const turns = askSome(rng, items, 1 + rng.int(4)).map(({ question, answer }) => ({ question, answer }));
  // RULER's multikey_2/3: the haystack is all distractor needles of the same form
  const distract = rng.next() < 0.15 ? () => w.needle(w.noun, key(c), value(c, kind)) : undefined;
  const chars =
    budget(
      c,
      items.map((i) => i.sentence),
      turns,
    ) - w.intro.length;
  return {
    task: 'niah_multikey',
    context: withIntro(
      w.intro,
      hideIn(
        c,
        chars,
        items.map((i) => i.sentence),
        false,
        distract,
      ),
    ),
    turns,
  };
}

function multivalue(c: Ctx): Dialogue {
  const { rng } = c;
  const kind = rng.pick<ValueKind>(['number', 'number', 'word']);
  const w = kvWording(c, kind);
  const groups = needleCount(c, 400, 4);
  const sentences: string[] = [];
  const turns: { question: string; answer: string }[] = [];
  const depthsByKey: number[][] = [];
  for (const k of distinct(rng, groups, () => key(c))) {
    const vals = distinct(rng, c.length < 512 ? 2 : 2 + rng.int(3), () => value(c, kind));
    for (const v of vals) sentences.push(w.needle(w.noun, k, v));
    depthsByKey.push(vals.map(() => rng.next()).sort((a, b) => a - b));
    turns.push({ question: w.all(w.nouns, [k]), answer: w.answer(w.noun, w.nouns, [k], vals) });
  }
  // values of one key appear in answer order
  const chars = budget(c, sentences, turns) - w.intro.length;
  const hay = haystackOfKind(pickHaystackKind(rng, c.split), rng, c.corpus, c.split, chars);
  const depths = depthsByKey.flat();
  const context = insertAtDepths(
    hay,
    sentences.map((sentence, i) => ({ sentence, depth: depths[i] })),
  );
  return { task: 'niah_multivalue', context: withIntro(w.intro, context), turns };
}

function multiquery(c: Ctx): Dialogue {
  const { rng } = c;
  const kind = rng.pick<ValueKind>(['number', 'number', 'word', 'uuid']);
  const w = kvWording(c, kind);
  const n = needleCount(c, 110, 12);
  const keys = distinct(rng, Math.max(2, n), () => key(c));
  const vals = keys.map(() => value(c, kind));
  const sentences = keys.map((k, i) => w.needle(w.noun, k, vals[i]));
  const asked = askSome(
    rng,
    keys.map((_k, i) => i),
    2 + rng.int(3),
  );
  const ks = asked.map((i) => keys[i]);
  const turns = [
    {
      question: w.all(w.nouns, ks),
      answer: w.answer(
        w.noun,
        w.nouns,
        ks,
        asked.map((i) => vals[i]),
      ),
    },
  ];
  const chars = budget(c, sentences, turns) - w.intro.length;
  return { task: 'niah_multiquery', context: withIntro(w.intro, hideIn(c, chars, sentences)), turns };
}

function passkey(c: Ctx): Dialogue {
  const v = randomDigits(c.rng, 5);
  const sentence = `The pass key is ${v}. Remember it. ${v} is the pass key.`;
  const turns = [{ question: 'What is the pass key?', answer: `The pass key is ${v}.` }];
  return { task: 'passkey', context: hideIn(c, budget(c, [sentence], turns), [sentence]), turns };
}

const VT_INTROS: Bank<string> = {
  train: [
    'Keep track of the variable assignments in the following text.',
    'The text below assigns values to variables. Follow them.',
    'Track every assignment hidden in this passage.',
    'Some variables are defined in the text below; remember the chains.',
    '',
  ],
  heldout: [
    'Memorize and track the chain(s) of variable assignment hidden in the following text.',
    'Variables are set below; follow each one.',
  ],
};

function variableTracking(c: Ctx): Dialogue {
  const { rng } = c;
  const name = () => Array.from({ length: 5 }, () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[rng.int(26)]).join('');
  const syntax = pickWording(rng, ASSIGNMENTS, c.split);
  const question = pickWording(rng, VT_QUESTIONS, c.split),
    answer = pickWording(rng, VT_ANSWERS, c.split);
  const intro = pickWording(rng, VT_INTROS, c.split);
  const chains = 1 + rng.int(2);
  const names = distinct(rng, chains * 6, name);
  const sentences: string[] = [];
  const turns: { question: string; answer: string }[] = [];
  const depthsByChain: number[][] = [];
  for (let ch = 0; ch < chains; ch++) {
    const v = randomDigits(rng, 5);
    const vars = names.slice(ch * 6, ch * 6 + 2 + rng.int(4));
    sentences.push(syntax.value(vars[0], v));
    for (let i = 1; i < vars.length; i++) sentences.push(syntax.copy(vars[i], vars[i - 1]));
    depthsByChain.push(vars.map(() => rng.next()).sort((a, b) => a - b));
    turns.push({ question: question(v), answer: answer(v, vars) });
  }
  // each chain in the order of its steps
  const chars = budget(c, sentences, turns) - intro.length;
  const hay = rng.next() < 0.4 ? noiseSlice(chars) : haystackOfKind(pickHaystackKind(rng, c.split), rng, c.corpus, c.split, chars);
  const depths = depthsByChain.flat();
  const context = withIntro(
    intro,
    insertAtDepths(
      hay,
      sentences.map((sentence, i) => ({ sentence, depth: depths[i] })),
    ),
  );
  return { task: 'variable_tracking', context, turns: turns.slice(0, 1 + rng.int(turns.length)) };
}

function commonWords(c: Ctx): Dialogue {
  const { rng } = c;
  const wording = pickWording(rng, COMMON_WORDS, c.split);
  const top = rng.pick([3, 5, 10].filter((k) => k === 3 || c.length >= k * 80));
  const numbered = rng.next() < 0.6;
  const itemChars = numbered ? 12 : 9;
  const target = Math.max(top * 4, Math.floor((c.length - 250) / itemChars));
  const commonTimes = Math.max(3, Math.floor(target / (2 * top)));
  const rareTimes = 1 + (rng.next() < 0.3 ? 1 : 0);
  const rareCount = Math.max(top, Math.floor((target - commonTimes * top) / rareTimes));
  const pool = distinct(rng, top + rareCount, () => rng.pick(words(c)));
  const common = pool.slice(0, top),
    rare = pool.slice(top);
  const list: string[] = [];
  for (const w of common) for (let i = 0; i < commonTimes; i++) list.push(w);
  for (const w of rare) for (let i = 0; i < rareTimes; i++) list.push(w);
  rng.shuffle(list);
  const body = numbered ? list.map((w, i) => `${i + 1}. ${w}`).join(' ') : list.join(rng.pick([', ', ' ', '\n']));
  return {
    task: 'common_words',
    context: `${wording.intro}\n${body}`,
    turns: [{ question: wording.question(top), answer: wording.answer(top, common) }],
  };
}

function frequentWords(c: Ctx): Dialogue {
  const { rng } = c;
  const wording = pickWording(rng, FREQUENT_WORDS, c.split);
  const n = Math.max(24, Math.floor((c.length - 250) / 6.5));
  const vocab = distinct(rng, Math.max(8, Math.min(60, Math.floor(n / 4))), () =>
    Array.from({ length: 4 + rng.int(4) }, () => 'abcdefghijklmnopqrstuvwxyz'[rng.int(26)]).join(''),
  );
  vocab[0] = '....';
  // Zipf frequencies as RULER: word k appears about n * k^-alpha / zeta(alpha) times; the most frequent is noise
  const alpha = 1.6 + rng.next() * 0.6;
  const weights = vocab.map((_, i) => (i + 1) ** -alpha);
  const total = weights.reduce((a, b) => a + b, 0);
  const out: string[] = [];
  vocab.forEach((w, i) => {
    const count = Math.max(i < 4 ? 1 : 0, Math.round((n * weights[i]) / total));
    for (let k = 0; k < count; k++) out.push(w);
  });
  rng.shuffle(out);
  return {
    task: 'frequent_words',
    context: `${wording.intro} ${out.join(' ')}`,
    turns: [{ question: wording.question(3), answer: wording.answer(3, vocab.slice(1, 4)) }],
  };
}

/** Extractive questions: a span of a real document, asked for by the words around it. */
function cloze(c: Ctx): Dialogue {
  const { rng } = c;
  const kinds = c.split === 'train' ? (['essay', 'news', 'instructions'] as const) : (['essay', 'news', 'user-instructions'] as const);
  const questions = c.length < 600 ? 1 : 1 + rng.int(3);
  const context = haystackOfKind(rng.pick(kinds), rng, c.corpus, c.split, Math.max(60, c.length - questions * 130));
  const tokens = context.split(/(\s+)/);
  const turns: { question: string; answer: string }[] = [];
  for (let q = 0; q < questions * 4 && turns.length < questions; q++) {
    const words = Math.floor(tokens.length / 2);
    if (words < 20) break;
    const at = 2 * rng.int(words - 16);
    const lead = 3 + rng.int(4),
      span = 2 + rng.int(7);
    const piece = (a: number, b: number) => tokens.slice(a, b).join('').trim();
    const before = piece(at, at + 2 * lead - 1),
      answer = piece(at + 2 * lead, at + 2 * (lead + span) - 1),
      after = piece(at + 2 * (lead + span), at + 2 * (lead + span + 3) - 1);
    if (!answer || context.indexOf(`${before} `) !== context.lastIndexOf(`${before} `) || /["\n]/.test(before + answer + after)) continue;
    const wording = pickWording(rng, CLOZE, c.split);
    turns.push({ question: wording.question(before, after), answer: wording.answer(answer) });
  }
  if (turns.length === 0) return passkey(c);
  return { task: 'cloze', context, turns };
}

/** Dense copying, the skill every retrieval task rests on: several turns of "repeat after me". */
function repeat(c: Ctx): Dialogue {
  const { rng } = c;
  const phrase = () => {
    switch (rng.int(c.pieces?.length ? 6 : 5)) {
      case 0:
        return randomDigits(rng, 5 + rng.int(6));
      case 4:
        return Array.from({ length: 1 + rng.int(3) }, () => pseudoName(rng)).join(rng.pick([' ', ', ', ' and ']));
      case 5: {
        // random runs of the vocabulary's letter tokens, so that each is copied some time (never a held-out string)
        for (;;) {
          const p = Array.from({ length: 2 + rng.int(9) }, () => {
            const w = rng.pick(c.pieces!);
            return rng.next() < 0.25 ? w.replace(/[a-z]/, (ch) => ch.toUpperCase()) : w;
          })
            .join('')
            .trim();
          if (!NEVER_TRAINED.some((b) => p.includes(b))) return p;
        }
      }
      case 1:
        return randomUuid(rng);
      case 2:
        return Array.from({ length: 3 + rng.int(8) }, () => rng.pick(words(c))).join(' ');
      default:
        return randomActivity(rng, words(c));
    }
  };
  const turns: { question: string; answer: string }[] = [];
  let used = 0;
  while (used < c.length - 60 || turns.length === 0) {
    const p = phrase();
    const t = { question: `Repeat after me: ${p}`, answer: p };
    used += t.question.length + t.answer.length + TURN_OVERHEAD;
    turns.push(t);
  }
  return { task: 'repeat', context: '', turns };
}

function instruct(c: Ctx): Dialogue {
  const item = c.rng.pick(c.corpus.instruct);
  const cut = (s: string, n: number) => (s.length > n ? s.slice(0, n) : s);
  return { task: 'instruct', context: '', turns: [{ question: cut(item.prompt, c.length / 2), answer: cut(item.response, c.length / 2) }] };
}

/** Plain next-token text: essays (or held-out essays) and trainable LongBench documents. */
export function plainText(rng: Rng, corpus: Corpus, split: Split, length: number): PlainText {
  if (split === 'train' && corpus.longbenchTrain.length && rng.next() < 0.3) {
    const doc = rng.pick(corpus.longbenchTrain);
    const start = doc.length > length ? rng.int(doc.length - length) : 0;
    return { task: 'text', text: doc.slice(start, start + length) };
  }
  return { task: 'text', text: haystackSlice(rng, split === 'train' ? corpus.trainText : corpus.heldOutText, length) };
}

const MAKERS: Record<TaskName, (c: Ctx) => Dialogue> = {
  niah_place: niahPlace,
  niah_multikey: multikey,
  niah_multivalue: multivalue,
  niah_multiquery: multiquery,
  passkey,
  variable_tracking: variableTracking,
  common_words: commonWords,
  frequent_words: frequentWords,
  instruct,
  repeat,
  cloze,
};

export function makeDialogue(task: TaskName, rng: Rng, corpus: Corpus, split: Split, length: number, pieces?: readonly string[]): Dialogue {
  return MAKERS[task]({ rng, corpus, split, length, pieces });
}
