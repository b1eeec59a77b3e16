import { Rng } from '../../util/rng.js';
import type { Corpus } from './corpus.js';
import { haystackSlice, insertAtDepths, noiseSlice } from './haystack.js';
import {
  HELD_OUT_PLACES, HELD_OUT_PLACE_WORDINGS, TRAIN_PLACE_WORDINGS, randomActivity, randomPlace,
} from './needles.js';
import { joinAnd, randomDigits, randomUuid } from './words.js';

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
  'niah_place', 'niah_multikey', 'niah_multivalue', 'niah_multiquery', 'passkey', 'variable_tracking', 'common_words', 'frequent_words',
  'instruct', 'repeat',
] as const;
export type TaskName = (typeof TASKS)[number];

export type Split = 'train' | 'heldout';

/** Bytes of template around each turn: "<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n", "<|im_end|>\n". */
const TURN_OVERHEAD = 40;

interface Ctx {
  rng: Rng;
  corpus: Corpus;
  split: Split;
  /** target length in tokens (bytes) */
  length: number;
}

function words(c: Ctx): string[] {
  return c.split === 'train' ? c.corpus.trainWords : c.corpus.heldOutWords;
}

function source(c: Ctx): string {
  return c.split === 'train' ? c.corpus.trainText : c.corpus.heldOutText;
}

function budget(c: Ctx, needles: string[], turns: { question: string; answer: string }[]): number {
  let used = 2;
  for (const n of needles) used += n.length + 1;
  for (const t of turns) used += t.question.length + t.answer.length + TURN_OVERHEAD;
  return Math.max(0, c.length - used);
}

function distinct<T>(rng: Rng, n: number, make: () => T, key: (t: T) => string = String): T[] {
  const out: T[] = [], seen = new Set<string>();
  for (let tries = 0; out.length < n && tries < n * 20; tries++) {
    const t = make();
    if (!seen.has(key(t))) { seen.add(key(t)); out.push(t); }
  }
  return out;
}

/** How many needles and questions fit densely at this length. */
function needleCount(c: Ctx, per: number, max: number): number {
  return Math.max(1, Math.min(max, Math.floor(c.length / per)));
}

function haystackWith(c: Ctx, needles: string[], turns: { question: string; answer: string }[], noise = false): string {
  const chars = budget(c, needles, turns);
  const hay = noise ? noiseSlice(chars) : haystackSlice(c.rng, source(c), chars);
  return insertAtDepths(hay, needles.map((sentence) => ({ sentence, depth: c.rng.next() })));
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
  return { task: 'niah_place', context: haystackWith(c, items.map((i) => i.sentence), turns), turns };
}

type ValueKind = 'number' | 'word' | 'uuid';

function value(c: Ctx, kind: ValueKind): string {
  if (kind === 'number') return randomDigits(c.rng, 7);
  if (kind === 'uuid') return randomUuid(c.rng);
  return c.rng.pick(words(c));
}

function key(c: Ctx): string {
  const w = words(c);
  return c.rng.next() < 0.5 ? c.rng.pick(w) : `${c.rng.pick(w)}-${c.rng.pick(w)}`;
}

const KIND_NOUN: Record<ValueKind, [string, string]> = { number: ['number', 'numbers'], word: ['word', 'words'], uuid: ['uuid', 'uuids'] };

function multikey(c: Ctx): Dialogue {
  const { rng } = c;
  const kind = rng.pick<ValueKind>(['number', 'number', 'word', 'uuid']);
  const noun = KIND_NOUN[kind][0];
  const n = needleCount(c, kind === 'uuid' ? 160 : 110, 16);
  const keys = distinct(rng, n, () => key(c));
  const items = keys.map((k) => {
    const v = value(c, kind);
    return {
      sentence: `One of the special magic ${KIND_NOUN[kind][1]} for ${k} is: ${v}.`,
      question: `What is the special magic ${noun} for ${k} mentioned in the provided text?`,
      answer: `The special magic ${noun} for ${k} mentioned in the provided text is ${v}.`,
    };
  });
  const turns = askSome(rng, items, 1 + rng.int(4)).map(({ question, answer }) => ({ question, answer }));
  return { task: 'niah_multikey', context: haystackWith(c, items.map((i) => i.sentence), turns), turns };
}

function multivalue(c: Ctx): Dialogue {
  const { rng } = c;
  const groups = needleCount(c, 400, 4);
  const sentences: string[] = [];
  const turns: { question: string; answer: string }[] = [];
  for (const k of distinct(rng, groups, () => key(c))) {
    const vals = distinct(rng, c.length < 512 ? 2 : 2 + rng.int(3), () => randomDigits(rng, 7));
    for (const v of vals) sentences.push(`One of the special magic numbers for ${k} is: ${v}.`);
    turns.push({
      question: `What are all the special magic numbers for ${k} mentioned in the provided text?`,
      answer: `The special magic numbers for ${k} mentioned in the provided text are: ${vals.join(', ')}.`,
    });
  }
  // values of one key must appear in answer order: insert at sorted depths per key
  const depths = sentences.map(() => rng.next());
  const chars = budget(c, sentences, turns);
  const hay = haystackSlice(rng, source(c), chars);
  const byKey: { sentence: string; depth: number }[] = [];
  let i = 0;
  for (const t of turns) {
    const count = t.answer.split(', ').length;
    const ds = depths.slice(i, i + count).sort((a, b) => a - b);
    for (let j = 0; j < count; j++) byKey.push({ sentence: sentences[i + j], depth: ds[j] });
    i += count;
  }
  return { task: 'niah_multivalue', context: insertAtDepths(hay, byKey), turns };
}

function multiquery(c: Ctx): Dialogue {
  const { rng } = c;
  const n = needleCount(c, 110, 12);
  const keys = distinct(rng, Math.max(2, n), () => key(c));
  const vals = keys.map(() => randomDigits(rng, 7));
  const sentences = keys.map((k, i) => `One of the special magic numbers for ${k} is: ${vals[i]}.`);
  const asked = askSome(rng, keys.map((k, i) => i), 2 + rng.int(3));
  const ks = asked.map((i) => keys[i]);
  const turns = [{
    question: `What are all the special magic numbers for ${joinAnd(ks)} mentioned in the provided text?`,
    answer: `The special magic numbers for ${joinAnd(ks)} mentioned in the provided text are: ${asked.map((i) => vals[i]).join(', ')}.`,
  }];
  return { task: 'niah_multiquery', context: haystackWith(c, sentences, turns), turns };
}

function passkey(c: Ctx): Dialogue {
  const v = randomDigits(c.rng, 5);
  const sentence = `The pass key is ${v}. Remember it. ${v} is the pass key.`;
  const turns = [{ question: 'What is the pass key?', answer: `The pass key is ${v}.` }];
  const noise = c.rng.next() < 0.5;
  return { task: 'passkey', context: haystackWith(c, [sentence], turns, noise), turns };
}

function variableTracking(c: Ctx): Dialogue {
  const { rng } = c;
  const name = () => Array.from({ length: 5 }, () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[rng.int(26)]).join('');
  const chains = 1 + rng.int(2);
  const sentences: string[] = [];
  const turns: { question: string; answer: string }[] = [];
  for (let ch = 0; ch < chains; ch++) {
    const v = randomDigits(rng, 5);
    const vars = distinct(rng, 2 + rng.int(3), name);
    sentences.push(`VAR ${vars[0]} = ${v}.`);
    for (let i = 1; i < vars.length; i++) sentences.push(`VAR ${vars[i]} = VAR ${vars[i - 1]}.`);
    turns.push({ question: `Find all variables that are assigned the value ${v} in the text above.`, answer: `The variables assigned the value ${v} are: ${vars.join(', ')}.` });
  }
  // each chain in order of its steps
  const chars = budget(c, sentences, turns);
  const hay = rng.next() < 0.5 ? noiseSlice(chars) : haystackSlice(rng, source(c), chars);
  const depths = sentences.map(() => rng.next()).sort((a, b) => a - b);
  rng.shuffle(depths);
  const items: { sentence: string; depth: number }[] = [];
  let i = 0;
  for (const t of turns) {
    const count = t.answer.split(', ').length;
    const ds = depths.slice(i, i + count).sort((a, b) => a - b);
    for (let j = 0; j < count; j++) items.push({ sentence: sentences[i + j], depth: ds[j] });
    i += count;
  }
  return { task: 'variable_tracking', context: insertAtDepths(hay, items), turns: turns.slice(0, 1 + rng.int(turns.length)) };
}

function commonWords(c: Ctx): Dialogue {
  const { rng } = c;
  const top = 3;
  const pool = distinct(rng, 40, () => rng.pick(words(c)));
  const common = pool.slice(0, top), rare = pool.slice(top);
  const list: string[] = [];
  const target = Math.max(20, Math.floor((c.length - 200) / 10));
  const commonTimes = Math.max(3, Math.floor(target / 4 / top));
  for (const w of common) for (let i = 0; i < commonTimes; i++) list.push(w);
  while (list.length < target) list.push(rng.pick(rare));
  rng.shuffle(list);
  // rank by count (ties impossible: common words appear more often than any rare word when target is large)
  const counts = new Map<string, number>();
  for (const w of list) counts.set(w, (counts.get(w) ?? 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, top).map((e) => e[0]);
  const context = list.map((w, i) => `${i + 1}. ${w}`).join(' ');
  return {
    task: 'common_words',
    context: context.slice(0, Math.max(100, c.length - 200)).replace(/ \d+\.?\s*\S*$/, ''),
    turns: [{ question: `What are the ${top} most common words in the above list?`, answer: `The ${top} most common words in the list are: ${ranked.join(', ')}.` }],
  };
}

function frequentWords(c: Ctx): Dialogue {
  const { rng } = c;
  const vocab = distinct(rng, 30, () => Array.from({ length: 3 + rng.int(4) }, () => 'abcdefghijklmnopqrstuvwxyz'[rng.int(26)]).join(''));
  const n = Math.max(30, Math.floor((c.length - 200) / 6));
  // Zipf-like frequencies: word i with weight 1 / (i + 1)^1.5
  const w = vocab.map((_, i) => 1 / Math.pow(i + 1, 1.5));
  const total = w.reduce((a, b) => a + b, 0);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let r = rng.next() * total, j = 0;
    while (j < w.length - 1 && (r -= w[j]) > 0) j++;
    out.push(vocab[j]);
  }
  const counts = new Map<string, number>();
  for (const x of out) counts.set(x, (counts.get(x) ?? 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 3).map((e) => e[0]);
  return {
    task: 'frequent_words',
    context: out.join(' ').slice(0, Math.max(100, c.length - 200)),
    turns: [{ question: 'What are the three most frequently appeared words in the above coded text?', answer: `The three most frequently appeared words are: ${ranked.join(', ')}.` }],
  };
}

/** Dense copying, the skill every retrieval task rests on: several turns of "repeat after me". */
function repeat(c: Ctx): Dialogue {
  const { rng } = c;
  const phrase = () => {
    switch (rng.int(4)) {
      case 0: return randomDigits(rng, 5 + rng.int(6));
      case 1: return randomUuid(rng);
      case 2: return Array.from({ length: 3 + rng.int(8) }, () => rng.pick(words(c))).join(' ');
      default: return randomActivity(rng, words(c));
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
  niah_place: niahPlace, niah_multikey: multikey, niah_multivalue: multivalue, niah_multiquery: multiquery, passkey,
  variable_tracking: variableTracking, common_words: commonWords, frequent_words: frequentWords, instruct, repeat,
};

export function makeDialogue(task: TaskName, rng: Rng, corpus: Corpus, split: Split, length: number): Dialogue {
  return MAKERS[task]({ rng, corpus, split, length });
}
