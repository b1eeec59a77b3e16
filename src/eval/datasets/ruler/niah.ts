import type { Rng } from '../../../util/rng.js';
import { splitSentences } from '../haystack.js';
import { randint, randomUuid, sample } from './random.js';
import { splitTemplate, type RulerSample } from './sample.js';
import { RULER_FAMILIES, fill, type NeedleKind, type NiahArgs } from './tasks.js';
import { ADJECTIVES, NOUNS } from './words.js';

/** RULER's needle sentence. */
const NEEDLE = 'One of the special magic {type_needle_v} for {key} is: {value}.';
/** RULER's "noise" haystack sentence. */
export const NOISE = 'The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.';
/** np.round(np.linspace(0, 100, num=40)).astype(int) */
export const DEPTHS: readonly number[] = Array.from({ length: 40 }, (_, i) => Math.round((i * 100) / 39));

const KEY_WORDS: readonly string[] = (() => {
  const set = new Set<string>();
  for (const a of ADJECTIVES) for (const n of NOUNS) set.add(`${a}-${n}`);
  return [...set].sort();
})();

export function randomNeedleValue(rng: Rng, kind: NeedleKind): string {
  if (kind === 'numbers') return String(randint(rng, 1000000, 9999999));
  if (kind === 'words') return KEY_WORDS[rng.int(KEY_WORDS.length)];
  return randomUuid(rng);
}

/**
 * One needle-in-a-haystack sample of RULER (scripts/data/synthetic/niah.py) with `n` haystack units:
 * essay words, noise sentences, or distractor needles.
 */
export function niahSample(args: NiahArgs, n: number, rng: Rng, essayWords: readonly string[]): RulerSample {
  const numK = Math.max(args.numNeedleK, args.numNeedleQ);
  const keys: string[] = [];
  const values: string[][] = [];
  const needles: string[] = [];
  for (let k = 0; k < numK; k++) {
    keys.push(randomNeedleValue(rng, args.typeNeedleK));
    const vs: string[] = [];
    for (let v = 0; v < args.numNeedleV; v++) {
      vs.push(randomNeedleValue(rng, args.typeNeedleV));
      needles.push(fill(NEEDLE, { type_needle_v: args.typeNeedleV, key: keys[keys.length - 1], value: vs[vs.length - 1] }));
    }
    values.push(vs);
  }
  rng.shuffle(needles);

  let context: string;
  if (args.typeHaystack === 'essay') {
    const words: string[] = [];
    for (let i = 0; i < n; i++) words.push(essayWords[i % essayWords.length]);
    const sents = splitSentences(words.join(' ').trim());
    const cuts = sample(rng, DEPTHS, needles.length)
      .map((d) => Math.floor(sents.length * (d / 100)))
      .sort((a, b) => a - b);
    const positions = [0, ...cuts, sents.length];
    const parts: string[] = [];
    for (let i = 1; i < positions.length; i++) {
      parts.push(sents.slice(positions[i - 1], positions[i]).join(' '));
      if (i - 1 < needles.length) parts.push(needles[i - 1]);
    }
    context = parts.join(' ');
  } else {
    const sentences: string[] =
      args.typeHaystack === 'noise'
        ? Array.from({ length: n }, () => NOISE)
        : Array.from({ length: n }, () =>
            fill(NEEDLE, {
              type_needle_v: args.typeNeedleV,
              key: randomNeedleValue(rng, args.typeNeedleK),
              value: randomNeedleValue(rng, args.typeNeedleV),
            }),
          );
    const idx = sample(
      rng,
      Array.from({ length: n }, (_, i) => i),
      Math.min(needles.length, n),
    ).sort((a, b) => b - a);
    idx.forEach((at, i) => sentences.splice(at, 0, needles[i]));
    context = sentences.join('\n');
  }

  const picked = sample(
    rng,
    Array.from({ length: numK }, (_, i) => i),
    args.numNeedleQ,
  );
  const queries = picked.map((i) => keys[i]);
  const answers = picked.flatMap((i) => values[i]);
  const query = queries.length > 1 ? `${queries.slice(0, -1).join(', ')}, and ${queries[queries.length - 1]}` : queries[0];

  let template = RULER_FAMILIES.niah.template + RULER_FAMILIES.niah.answerPrefix;
  let typeV: string = args.typeNeedleV;
  if (args.numNeedleQ * args.numNeedleV === 1) {
    template = template.replaceAll('Some', 'A').replaceAll('are all', 'is').replaceAll('are', 'is').replaceAll('answers', 'answer');
    typeV = typeV.slice(0, -1);
  }
  const full = fill(template, { type_needle_v: typeV, query });
  const [pre, post] = splitTemplate(full);
  // RULER locates the answer prefix by the last occurrence of its first 10 characters
  const cut = post.lastIndexOf(RULER_FAMILIES.niah.answerPrefix.slice(0, 10));
  const after = post.slice(0, cut);
  return { before: pre, context, after, question: after.trim(), answers, answerPrefix: post.slice(cut) };
}
