import type { Rng } from '../../util/rng.js';
import { capitalize, joinAnd } from './words.js';
import type { Split } from '../../eval/datasets/split.js';

/**
 * Wordings of the synthetic task families: how a needle is written into the context, how the question asks
 * for it, and how the answer restates it. Training draws from the `train` lists only; the `heldout` lists,
 * which include RULER's own templates (src/eval/datasets/ruler/tasks.ts), are never trained on, so that
 * RULER and the held-out evaluation measure retrieval under wordings the model has not seen.
 */
export interface Bank<T> {
  train: readonly T[];
  heldout: readonly T[];
}

export function pickWording<T>(rng: Rng, bank: Bank<T>, split: Split): T {
  return rng.pick(split === 'train' ? bank.train : bank.heldout);
}

export type ValueKind = 'number' | 'word' | 'uuid';

/** What a value is called: singular and plural, by the kind of value. */
export const VALUE_NOUNS: Record<ValueKind, Bank<[string, string]>> = {
  number: {
    train: [
      ['secret number', 'secret numbers'],
      ['lucky number', 'lucky numbers'],
      ['access code', 'access codes'],
      ['reference number', 'reference numbers'],
      ['serial number', 'serial numbers'],
      ['PIN', 'PINs'],
      ['hidden number', 'hidden numbers'],
      ['code', 'codes'],
      ['ticket number', 'ticket numbers'],
      ['account number', 'account numbers'],
      ['magic number', 'magic numbers'],
      ['special number', 'special numbers'],
      ['number', 'numbers'],
    ],
    heldout: [
      ['special magic number', 'special magic numbers'],
      ['registration number', 'registration numbers'],
      ['combination', 'combinations'],
    ],
  },
  word: {
    train: [
      ['secret word', 'secret words'],
      ['code word', 'code words'],
      ['password', 'passwords'],
      ['keyword', 'keywords'],
      ['magic word', 'magic words'],
      ['nickname', 'nicknames'],
      ['special word', 'special words'],
      ['watchword', 'watchwords'],
      ['codename', 'codenames'],
      ['word', 'words'],
    ],
    heldout: [
      ['special magic word', 'special magic words'],
      ['passphrase', 'passphrases'],
      ['motto', 'mottos'],
    ],
  },
  uuid: {
    train: [
      ['identifier', 'identifiers'],
      ['tracking id', 'tracking ids'],
      ['uuid', 'uuids'],
      ['hash', 'hashes'],
      ['token', 'tokens'],
      ['record id', 'record ids'],
      ['secret key', 'secret keys'],
      ['magic uuid', 'magic uuids'],
      ['special id', 'special ids'],
      ['license key', 'license keys'],
    ],
    heldout: [
      ['special magic uuid', 'special magic uuids'],
      ['serial key', 'serial keys'],
      ['checksum', 'checksums'],
    ],
  },
};

type NeedleFn = (noun: string, key: string, value: string) => string;

/** One key-value fact hidden in the context. */
export const NEEDLES: Bank<NeedleFn> = {
  train: [
    (n, k, v) => `The ${n} for ${k} is ${v}.`,
    (n, k, v) => `The ${n} of ${k} is ${v}.`,
    (n, k, v) => `Remember this: the ${n} for ${k} is ${v}.`,
    (n, k, v) => `Note that ${v} is the ${n} for ${k}.`,
    (n, k, v) => `For ${k}, the ${n} is ${v}.`,
    (n, k, v) => `The ${n} assigned to ${k} is ${v}.`,
    (n, k, v) => `${capitalize(v)} is the ${n} of ${k}.`,
    (n, k, v) => `Here is the ${n} for ${k}: ${v}.`,
    (n, k, v) => `Write down the ${n} for ${k}, which is ${v}.`,
    (n, k, v) => `The ${n} that belongs to ${k} is ${v}.`,
    (n, k, v) => `${capitalize(k)} has the ${n} ${v}.`,
    (n, k, v) => `Keep in mind that the ${n} of ${k} is ${v}.`,
    (n, k, v) => `In the records, the ${n} for ${k} reads ${v}.`,
    (n, k, v) => `Someone said that the ${n} for ${k} is ${v}.`,
    (n, k, v) => `The ${n} linked to ${k} is ${v}.`,
    (n, k, v) => `Do not forget: ${k} uses the ${n} ${v}.`,
    (n, k, v) => `A ${n} for ${k} is ${v}.`,
    (n, k, v) => `${capitalize(k)}: ${n} ${v}.`,
    (n, k, v) => `The ${n} given to ${k} was ${v}.`,
    (n, k, v) => `Attention, the ${n} for ${k} is ${v}.`,
    (n, k, v) => `We set the ${n} for ${k} to ${v}.`,
    (n, k, v) => `As for ${k}, its ${n} is ${v}.`,
  ],
  heldout: [
    // RULER's needle (scripts/data/synthetic/niah.py), plural noun
    (n, k, v) => `One of the ${n.endsWith('s') ? n : n + 's'} for ${k} is: ${v}.`,
    (n, k, v) => `Everyone knows that the ${n} registered under ${k} is ${v}.`,
    (n, k, v) => `${capitalize(k)} was issued ${v} as its ${n}.`,
  ],
};

type QuestionFn = (noun: string, key: string) => string;

/** Asking for the value of one key. */
export const QUESTIONS: Bank<QuestionFn> = {
  train: [
    (n, k) => `What is the ${n} for ${k}?`,
    (n, k) => `Which ${n} belongs to ${k}?`,
    (n, k) => `Tell me the ${n} for ${k}.`,
    (n, k) => `What ${n} was given for ${k} in the text?`,
    (n, k) => `Find the ${n} of ${k} in the text above.`,
    (n, k) => `Recall the ${n} assigned to ${k}.`,
    (n, k) => `According to the text, what is the ${n} of ${k}?`,
    (n, k) => `Look up the ${n} for ${k}.`,
    (n, k) => `What was the ${n} mentioned for ${k}?`,
    (n, k) => `Please give the ${n} that goes with ${k}.`,
    (n, k) => `Can you tell me which ${n} is linked to ${k}?`,
    (n, k) => `Search the document for the ${n} of ${k}. What is it?`,
    (n, k) => `What is ${k}'s ${n}?`,
    (n, k) => `Question: what is the ${n} for ${k}?`,
    (n, k) => `I need the ${n} for ${k}. What is it?`,
    (n, k) => `In the text above, which ${n} is given for ${k}?`,
    (n, k) => `Name the ${n} of ${k}.`,
    (n, k) => `What did the text say the ${n} for ${k} was?`,
    (n, k) => `Give me the ${n} for ${k} from the passage.`,
    (n, k) => `Which value is the ${n} for ${k}?`,
  ],
  heldout: [
    (n, k) => `What is the ${n} for ${k} mentioned in the provided text?`,
    (n, k) => `Quick question: what ${n} does ${k} have?`,
    (n, k) => `Based on the passage, report the ${n} of ${k}.`,
  ],
};

type AllQuestionFn = (nouns: string, keys: string[]) => string;

/** Asking for every value of one or several keys (multi-value and multi-query). */
export const ALL_QUESTIONS: Bank<AllQuestionFn> = {
  train: [
    (n, ks) => `What are all the ${n} for ${joinAnd(ks)}?`,
    (n, ks) => `List every one of the ${n} given for ${joinAnd(ks)}.`,
    (n, ks) => `Name all the ${n} of ${joinAnd(ks)} in the text.`,
    (n, ks) => `Which ${n} belong to ${joinAnd(ks)}?`,
    (n, ks) => `Find all the ${n} for ${joinAnd(ks)} in the text above.`,
    (n, ks) => `Tell me each of the ${n} for ${joinAnd(ks)}.`,
    (n, ks) => `Recall all ${n} assigned to ${joinAnd(ks)}.`,
    (n, ks) => `According to the text, what are the ${n} of ${joinAnd(ks)}?`,
    (n, ks) => `Give every ${n.replace(/s$/, '')} mentioned for ${joinAnd(ks)}.`,
    (n, ks) => `Question: which ${n} were given for ${joinAnd(ks)}?`,
    (n, ks) => `Please list the ${n} that go with ${joinAnd(ks)}.`,
    (n, ks) => `What ${n} does the text give for ${joinAnd(ks)}?`,
    (n, ks) => `Collect all the ${n} of ${joinAnd(ks)} from the passage.`,
    (n, ks) => `Look up all the ${n} for ${joinAnd(ks)}.`,
    (n, ks) => `Write out each of the ${n} for ${joinAnd(ks)}.`,
    (n, ks) => `In the text above, what are the ${n} for ${joinAnd(ks)}?`,
    (n, ks) => `Which values are the ${n} of ${joinAnd(ks)}?`,
    (n, ks) => `Enumerate the ${n} for ${joinAnd(ks)}.`,
    (n, ks) => `What were all of the ${n} mentioned for ${joinAnd(ks)}?`,
    (n, ks) => `I need every one of the ${n} for ${joinAnd(ks)}.`,
  ],
  heldout: [
    // RULER's question
    (n, ks) => `What are all the ${n} for ${joinAnd(ks)} mentioned in the provided text?`,
    (n, ks) => `Report each of the ${n} recorded for ${joinAnd(ks)}.`,
  ],
};

type AnswerFn = (noun: string, nouns: string, keys: string[], values: string[]) => string;

/** The assistant's answer: the values, usually after a restatement (so that an answer prefix can be continued). */
export const ANSWERS: Bank<AnswerFn> = {
  train: [
    (n, ns, ks, vs) => (vs.length === 1 ? `The ${n} for ${joinAnd(ks)} is ${vs[0]}.` : `The ${ns} for ${joinAnd(ks)} are ${joinAnd(vs)}.`),
    (n, ns, ks, vs) =>
      vs.length === 1 ? `The ${n} for ${joinAnd(ks)} is: ${vs[0]}.` : `The ${ns} for ${joinAnd(ks)} are: ${vs.join(', ')}.`,
    (_n, _ns, _ks, vs) => `${vs.join(', ')}`,
    (_n, _ns, _ks, vs) => (vs.length === 1 ? `It is ${vs[0]}.` : `They are ${joinAnd(vs)}.`),
    (n, ns, ks, vs) =>
      vs.length === 1
        ? `The ${n} of ${joinAnd(ks)} in the text is ${vs[0]}.`
        : `The ${ns} of ${joinAnd(ks)} in the text are ${vs.join(', ')}.`,
    (n, ns, ks, vs) =>
      vs.length === 1 ? `${capitalize(ks[0])}'s ${n} is ${vs[0]}.` : `The ${ns} given for ${joinAnd(ks)} are ${vs.join(', ')}.`,
    (_n, ns, ks, vs) =>
      `According to the text, the ${vs.length === 1 ? _n : ns} for ${joinAnd(ks)} ${vs.length === 1 ? 'is' : 'are'} ${vs.join(', ')}.`,
    (_n, _ns, _ks, vs) => `Answer: ${vs.join(', ')}.`,
  ],
  heldout: [
    // RULER's answer prefix, continued
    (_n, ns, ks, vs) => `The ${ns} for ${joinAnd(ks)} mentioned in the provided text are ${vs.join(', ')}.`,
    (n, ns, ks, vs) =>
      `Here ${vs.length === 1 ? 'it is' : 'they are'}: the ${vs.length === 1 ? n : ns} for ${joinAnd(ks)}, ${vs.join(', ')}.`,
  ],
};

type IntroFn = (nouns: string) => string;

/** An optional instruction before the context. */
export const INTROS: Bank<IntroFn> = {
  train: [
    (n) => `Some ${n} are hidden in the following text. Memorize them; I will ask about them later.`,
    (n) => `Read the text below carefully. It contains ${n} that you will be asked about.`,
    (n) => `The following document hides a few ${n}. Remember them.`,
    (n) => `Pay attention to any ${n} in the passage below.`,
    (n) => `Below is a long text with ${n} scattered through it. Keep track of them.`,
    (n) => `Memorize the ${n} that appear in the text that follows.`,
    (n) => `There are ${n} somewhere in this text. You will be quizzed on them.`,
    (n) => `Find and remember the ${n} in the following passage.`,
    (n) => `Here is a document. Some ${n} are mentioned in it.`,
    (n) => `Study the passage below; questions about its ${n} follow.`,
  ],
  heldout: [
    // RULER's instruction
    (n) =>
      `Some special magic ${n.replace(/^special magic /, '')} are hidden within the following text. Make sure to memorize it. I will quiz you about the ${n.replace(/^special magic /, '')} afterwards.`,
    (n) => `Hidden in this text are ${n}; note each one as you read.`,
  ],
};

/** How variable assignments are written (variable tracking). */
export interface AssignSyntax {
  value: (name: string, v: string) => string;
  copy: (name: string, from: string) => string;
}

export const ASSIGNMENTS: Bank<AssignSyntax> = {
  train: [
    { value: (a, v) => `let ${a} = ${v};`, copy: (a, b) => `let ${a} = ${b};` },
    { value: (a, v) => `${a} := ${v}.`, copy: (a, b) => `${a} := ${b}.` },
    { value: (a, v) => `Set ${a} to ${v}.`, copy: (a, b) => `Set ${a} to ${b}.` },
    { value: (a, v) => `${a} = ${v}`, copy: (a, b) => `${a} = ${b}` },
    { value: (a, v) => `Variable ${a} holds ${v}.`, copy: (a, b) => `Variable ${a} holds the value of ${b}.` },
    { value: (a, v) => `assign ${v} to ${a}.`, copy: (a, b) => `assign ${b} to ${a}.` },
    { value: (a, v) => `${a} <- ${v}`, copy: (a, b) => `${a} <- ${b}` },
    { value: (a, v) => `The variable ${a} is ${v}.`, copy: (a, b) => `The variable ${a} equals ${b}.` },
    { value: (a, v) => `const ${a} = ${v};`, copy: (a, b) => `const ${a} = ${b};` },
    { value: (a, v) => `${a} is assigned ${v}.`, copy: (a, b) => `${a} is assigned ${b}.` },
  ],
  heldout: [
    // RULER's chains (scripts/data/synthetic/variable_tracking.py)
    { value: (a, v) => `VAR ${a} = ${v}.`, copy: (a, b) => `VAR ${a} = VAR ${b}.` },
    { value: (a, v) => `define ${a} as ${v}.`, copy: (a, b) => `define ${a} as ${b}.` },
  ],
};

export const VT_QUESTIONS: Bank<(v: string) => string> = {
  train: [
    (v) => `Which variables end up with the value ${v}?`,
    (v) => `List all variables whose value is ${v}.`,
    (v) => `Track the assignments above: which variables equal ${v}?`,
    (v) => `Name every variable that is assigned ${v}, directly or through another variable.`,
    (v) => `Find the variables that hold ${v} in the text above.`,
    (v) => `What variables have the value ${v}?`,
    (v) => `Following the chain of assignments, which variables are ${v}?`,
    (v) => `Question: which variables get the value ${v}?`,
    (v) => `Give all the variables equal to ${v}.`,
    (v) => `Which names refer to the value ${v} after all assignments?`,
    (v) => `Trace the value ${v}: which variables receive it?`,
    (v) => `Identify every variable set to ${v}.`,
    (v) => `Which of the variables above store ${v}?`,
    (v) => `Which variables hold ${v} once every assignment is done?`,
    (v) => `Tell me all variables that are equal to ${v}.`,
    (v) => `Collect the variables assigned the value ${v}.`,
    (v) => `What are the variables whose value is ${v} in the text?`,
    (v) => `Please list every variable that ends up as ${v}.`,
    (v) => `From the assignments in the text, which variables equal ${v}?`,
    (v) => `Which variables are set to ${v}, directly or indirectly?`,
  ],
  heldout: [
    (v) => `Question: Find all variables that are assigned the value ${v} in the text above.`,
    (v) => `Report each variable carrying the value ${v}.`,
  ],
};

export const VT_ANSWERS: Bank<(v: string, names: string[]) => string> = {
  train: [
    (v, ns) => `The variables with the value ${v} are ${ns.join(', ')}.`,
    (v, ns) => `${ns.length} variables have the value ${v}: ${ns.join(', ')}.`,
    (_v, ns) => ns.join(', '),
    (v, ns) => `The variables assigned ${v} are: ${ns.join(', ')}.`,
    (v, ns) => `Following the chain, ${ns.length} variables are assigned the value ${v}, they are: ${ns.join(' ')}`,
    (_v, ns) => `They are ${joinAnd(ns)}.`,
  ],
  heldout: [
    // RULER's answer prefix, continued
    (v, ns) =>
      `Answer: According to the chain(s) of variable assignment in the text above, ${ns.length} variables are assigned the value ${v}, they are: ${ns.join(' ')}`,
    (v, ns) => `Every one of ${ns.join(', ')} carries ${v}.`,
  ],
};

/** Word-count tasks: the instruction, the question for the top k, and the answer. */
export interface CountWording {
  intro: string;
  question: (k: number) => string;
  answer: (k: number, words: string[]) => string;
}

export const COMMON_WORDS: Bank<CountWording> = {
  train: [
    {
      intro: 'Here is a list of words. Some of them occur many times.',
      question: (k) => `Which ${k} words occur most often in the list?`,
      answer: (k, ws) => `The ${k} most frequent words are: ${ws.join(', ')}.`,
    },
    {
      intro: 'Count the words in the following list.',
      question: (k) => `What are the ${k} most common words above?`,
      answer: (_k, ws) => ws.map((w, i) => `${i + 1}. ${w}`).join(' '),
    },
    {
      intro: 'Read this list of words and notice which repeat.',
      question: (k) => `List the ${k} words that appear most frequently.`,
      answer: (_k, ws) => ws.join(', '),
    },
    {
      intro: 'A long list of words follows.',
      question: (k) => `Give the top ${k} words by how often they appear.`,
      answer: (k, ws) => `Top ${k}: ${ws.join(', ')}.`,
    },
    {
      intro: 'Some words in this list are repeated more than others.',
      question: (k) => `Which are the ${k} most repeated words?`,
      answer: (_k, ws) => `The most repeated words are ${joinAnd(ws)}.`,
    },
    {
      intro: 'Below are words, one after another.',
      question: (k) => `Name the ${k} words seen most often in the list.`,
      answer: (_k, ws) => ws.map((w, i) => `${i + 1}. ${w}`).join(' '),
    },
    {
      intro: 'Keep count of the words in this list.',
      question: (k) => `What ${k} words have the highest counts?`,
      answer: (_k, ws) => `The words with the highest counts are: ${ws.join(', ')}.`,
    },
    {
      intro: 'This is a list of words with repetitions.',
      question: (k) => `Which ${k} words are the most common in the list?`,
      answer: (k, ws) => `The ${k} most common words in the list are: ${ws.join(', ')}.`,
    },
    {
      intro: 'Look at the words below and find the frequent ones.',
      question: (k) => `Tell me the ${k} most frequent words.`,
      answer: (_k, ws) => ws.join(' '),
    },
    {
      intro: 'Tally the words in the following list.',
      question: (k) => `According to your tally, which ${k} words come up most?`,
      answer: (_k, ws) => `They are: ${ws.map((w, i) => `${i + 1}. ${w}`).join(' ')}`,
    },
    {
      intro: 'Words are listed below; several occur again and again.',
      question: (k) => `What are the ${k} words that occur again and again?`,
      answer: (_k, ws) => ws.join(', '),
    },
    {
      intro: 'Below is a word list.',
      question: (k) => `Find the ${k} most common entries.`,
      answer: (_k, ws) => `Most common entries: ${ws.join(', ')}.`,
    },
    {
      intro: 'Here are many words; a few of them dominate.',
      question: (k) => `Which ${k} words dominate the list?`,
      answer: (_k, ws) => `The dominant words are ${ws.join(', ')}.`,
    },
    {
      intro: 'Count how often each word appears below.',
      question: (k) => `Which ${k} words appear the most times?`,
      answer: (_k, ws) => ws.map((w, i) => `${i + 1}. ${w}`).join(' '),
    },
    {
      intro: 'The list below repeats some words.',
      question: (k) => `List the ${k} words repeated most.`,
      answer: (k, ws) => `The ${k} words repeated most are: ${ws.join(', ')}.`,
    },
    {
      intro: 'Here is a sequence of words.',
      question: (k) => `What are the ${k} most frequent words in this sequence?`,
      answer: (_k, ws) => ws.join(', '),
    },
    {
      intro: 'Read the list and remember which words are common.',
      question: (k) => `Which words are the ${k} most common ones?`,
      answer: (_k, ws) => `${joinAnd(ws)}.`,
    },
    {
      intro: 'Some entries below appear far more often than the rest.',
      question: (k) => `Name the ${k} entries that appear far more often.`,
      answer: (_k, ws) => ws.map((w, i) => `${i + 1}. ${w}`).join(' '),
    },
    { intro: 'A list of words:', question: (k) => `Top ${k} most common words?`, answer: (_k, ws) => ws.join(', ') },
    {
      intro: 'Inspect the following words.',
      question: (k) => `Which ${k} words are used most often?`,
      answer: (_k, ws) => `The words used most often are: ${ws.join(', ')}.`,
    },
  ],
  heldout: [
    // RULER's (scripts/data/synthetic/common_words_extraction.py)
    {
      intro:
        'Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that appear most often.',
      question: (k) => `Question: What are the ${k} most common words in the above list?`,
      answer: (k, ws) =>
        `Answer: The top ${k} words that appear most often in the list are: ${ws.map((w, i) => `${i + 1}. ${w}`).join(' ')}`,
    },
    {
      intro: 'The words below recur unevenly.',
      question: (k) => `Report the ${k} words that recur the most.`,
      answer: (_k, ws) => `Recurring most: ${ws.join(', ')}.`,
    },
  ],
};

export const FREQUENT_WORDS: Bank<CountWording> = {
  train: [
    {
      intro: 'Here is a text made of coded words. Some codes appear more often than others.',
      question: (k) => `Which ${k} coded words appear most often (ignore the dots)?`,
      answer: (_k, ws) => `The most frequent coded words are: ${ws.join(', ')}.`,
    },
    {
      intro: 'Count the coded words in this text.',
      question: (k) => `What are the ${k} most frequent codes, not counting the dots?`,
      answer: (_k, ws) => ws.join(', '),
    },
    {
      intro: 'The following is coded text.',
      question: (k) => `Name the ${k} coded words seen most often, apart from the dots.`,
      answer: (_k, ws) => `They are ${joinAnd(ws)}.`,
    },
    {
      intro: 'Track how often each coded word occurs.',
      question: (k) => `List the top ${k} coded words by frequency, skipping the dots.`,
      answer: (k, ws) => `Top ${k}: ${ws.join(', ')}.`,
    },
    {
      intro: 'Below is a stream of coded words.',
      question: (k) => `Which ${k} codes occur the most? Ignore '....'.`,
      answer: (_k, ws) => ws.join(' '),
    },
    {
      intro: 'A coded message follows.',
      question: (k) => `What ${k} coded words are most frequent in the message, other than the dots?`,
      answer: (_k, ws) => `The most frequent are: ${ws.join(', ')}.`,
    },
    {
      intro: 'Read the coded words below.',
      question: (k) => `Give the ${k} most frequent coded words (the dots do not count).`,
      answer: (_k, ws) => ws.join(', '),
    },
    {
      intro: 'Some codes in this text repeat a lot.',
      question: (k) => `Which ${k} codes repeat the most, leaving out the dots?`,
      answer: (_k, ws) => `The codes that repeat most are ${ws.join(', ')}.`,
    },
    {
      intro: 'Here are coded words in random order.',
      question: (k) => `Find the ${k} codes that appear most frequently, ignoring dots.`,
      answer: (_k, ws) => ws.join(', '),
    },
    {
      intro: 'Study the coded text.',
      question: (k) => `Which are the ${k} most common coded words? Do not count '....'.`,
      answer: (k, ws) => `The ${k} most common coded words are: ${ws.join(', ')}.`,
    },
    {
      intro: 'Coded words, some frequent, some rare:',
      question: (k) => `Tell me the ${k} frequent ones, without the dots.`,
      answer: (_k, ws) => `${joinAnd(ws)}.`,
    },
    {
      intro: 'This text uses a small set of codes.',
      question: (k) => `What are the ${k} codes used most often, besides the dots?`,
      answer: (_k, ws) => ws.join(', '),
    },
    {
      intro: 'Count each code in the passage below.',
      question: (k) => `Which ${k} codes have the highest counts, apart from '....'?`,
      answer: (_k, ws) => `Highest counts: ${ws.join(', ')}.`,
    },
    {
      intro: 'A sequence of codes:',
      question: (k) => `The ${k} most frequent codes, ignoring the dots?`,
      answer: (_k, ws) => ws.join(', '),
    },
    {
      intro: 'Look through these coded words.',
      question: (k) => `Which ${k} coded words show up most, the dots aside?`,
      answer: (_k, ws) => `The ones that show up most are ${ws.join(', ')}.`,
    },
    {
      intro: 'Here is a list of coded words.',
      question: (k) => `Name the top ${k} coded words (not the dots).`,
      answer: (_k, ws) => ws.join(' '),
    },
    {
      intro: 'Read this coded text and tally the codes.',
      question: (k) => `According to your tally, which ${k} codes lead, excluding '....'?`,
      answer: (_k, ws) => `They are: ${ws.join(', ')}.`,
    },
    {
      intro: 'The coded words below follow a skewed distribution.',
      question: (k) => `Which ${k} coded words are the most frequent, leaving aside the dots?`,
      answer: (_k, ws) => ws.join(', '),
    },
    {
      intro: 'Coded text:',
      question: (k) => `What are its ${k} most frequent words, dots excluded?`,
      answer: (_k, ws) => `Most frequent: ${ws.join(', ')}.`,
    },
    {
      intro: 'Consider the coded words below.',
      question: (k) => `Find the ${k} most frequently used codes, not counting '....'.`,
      answer: (_k, ws) => ws.join(', '),
    },
  ],
  heldout: [
    // RULER's (scripts/data/synthetic/freq_words_extraction.py)
    {
      intro:
        'Read the following coded text and track the frequency of each coded word. Find the three most frequently appeared coded words.',
      question: () =>
        "Question: Do not provide any explanation. Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text?",
      answer: (_k, ws) => `Answer: According to the coded text above, the three most frequently appeared words are: ${ws.join(' ')}`,
    },
    {
      intro: 'The codes below are unevenly spread.',
      question: (k) => `Report the ${k} codes with the most occurrences, dots aside.`,
      answer: (_k, ws) => `Most occurrences: ${ws.join(', ')}.`,
    },
  ],
};

/** Extractive questions over a document: the answer is a span of it. */
export interface ClozeWording {
  question: (before: string, after: string) => string;
  answer: (span: string) => string;
}

export const CLOZE: Bank<ClozeWording> = {
  train: [
    { question: (b) => `In the text above, what comes right after "${b}"?`, answer: (s) => s },
    { question: (b) => `Continue this quote from the document: "${b}"`, answer: (s) => s },
    { question: (b, a) => `Fill in the blank from the text: "${b} ___ ${a}"`, answer: (s) => s },
    {
      question: (b, a) => `Which words are missing in "${b} ... ${a}"? Answer from the document.`,
      answer: (s) => `The missing words are "${s}".`,
    },
    { question: (b) => `The document contains the phrase "${b}". How does it go on?`, answer: (s) => `It goes on: ${s}` },
    { question: (b, a) => `Complete the sentence as written in the text: ${b} ___ ${a}`, answer: (s) => s },
    { question: (b) => `Quote the words that follow "${b}" in the passage.`, answer: (s) => `"${s}"` },
    { question: (b) => `What does the passage say after "${b}"?`, answer: (s) => `After that it says: ${s}` },
    { question: (b, a) => `Between "${b}" and "${a}", what does the text say?`, answer: (s) => s },
    { question: (b) => `Find "${b}" in the document and copy the next words.`, answer: (s) => s },
    { question: (b, a) => `Restore the gap using the document: "${b} [...] ${a}"`, answer: (s) => s },
    { question: (b) => `Look for the words "${b}". What follows them?`, answer: (s) => `They are followed by: ${s}` },
    { question: (b, a) => `What belongs in the blank? "${b} ____ ${a}"`, answer: (s) => s },
    { question: (b) => `Right after "${b}", which words appear in the text?`, answer: (s) => s },
    { question: (b) => `Recite what comes next in the document after "${b}".`, answer: (s) => s },
    { question: (b, a) => `The text reads "${b} ... ${a}". What is in place of the dots?`, answer: (s) => `In place of the dots: ${s}` },
    { question: (b) => `Copy the continuation of "${b}" from the passage.`, answer: (s) => s },
    { question: (b, a) => `Supply the missing part from the document: ${b} ___ ${a}`, answer: (s) => s },
    { question: (b) => `Where the text says "${b}", how does the sentence continue?`, answer: (s) => s },
    { question: (b) => `What are the words after "${b}" in the text?`, answer: (s) => s },
  ],
  heldout: [
    { question: (b) => `Reproduce the words the document places immediately after "${b}".`, answer: (s) => s },
    { question: (b, a) => `Using only the passage, recover the omitted words: "${b} <gap> ${a}"`, answer: (s) => s },
  ],
};
