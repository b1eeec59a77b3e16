import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { sharedData } from '../../paths.js';
import { KvevictError } from '../../errors.js';
import { LONGBENCH_HELD_OUT_BELOW, NEVER_TRAINED, heldOutEssayFiles, readEssay, trainingEssayFiles } from '../../eval/datasets/split.js';
import { hashString, vocabularyOf } from './words.js';
import { ADJECTIVES as RULER_ADJECTIVES, NOUNS as RULER_NOUNS, VERBS as RULER_VERBS } from '../../eval/datasets/ruler/words.js';

/** One instruction and its answer, for chat-format training. */
export interface InstructItem {
  prompt: string;
  response: string;
}

/** The text the data generators draw from, split into training and held-out parts. */
export interface Corpus {
  /** training essays joined: haystacks and plain-text sequences */
  trainText: string;
  /** held-out essays joined: evaluation haystacks and held-out perplexity */
  heldOutText: string;
  /** LongBench documents that may be trained on */
  longbenchTrain: string[];
  /** LongBench documents kept for evaluation haystacks */
  longbenchHeldOut: string[];
  instruct: InstructItem[];
  /** instruction sets as plain text: trained haystacks (GPTeacher, self-instruct seeds) and held-out ones (user-oriented) */
  instructTexts: string[];
  heldOutInstructTexts: string[];
  /** words for keys and filler: training keys and held-out keys are disjoint (RULER's word lists are held out) */
  trainWords: string[];
  heldOutWords: string[];
}

function readJsonl(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** Load the corpus from ../shared/data. */
/** `text` without the sentences that contain any of `banned` (the rest of each line kept as it was). */
export function withoutSentences(text: string, banned: readonly string[]): string {
  return text
    .split('\n')
    .map((line) => {
      if (!banned.some((b) => line.includes(b))) return line;
      return line
        .split(/(?<=[.!?])\s+/)
        .filter((sent) => !banned.some((b) => sent.includes(b)))
        .join(' ');
    })
    .join('\n');
}

export function loadCorpus(): Corpus {
  const trainText = withoutSentences(trainingEssayFiles().map(readEssay).join('\n\n'), NEVER_TRAINED);
  const heldOutText = heldOutEssayFiles().map(readEssay).join('\n\n');
  const lb = join(sharedData, 'longbench', 'multi_news.jsonl');
  const lbDocs = existsSync(lb) ? readJsonl(lb).map((r) => str(r.context)) : [];
  // the needle benchmark's own words must never be trained on, wherever they occur
  const clean = (t: string) => !NEVER_TRAINED.some((n) => t.includes(n));
  const longbenchTrain = lbDocs.slice(LONGBENCH_HELD_OUT_BELOW).filter((c) => c.length > 200 && clean(c));
  const longbenchHeldOut = lbDocs.slice(0, LONGBENCH_HELD_OUT_BELOW).filter((c) => c.length > 200);
  const instruct: InstructItem[] = [];
  const gpt = join(sharedData, 'instruct', 'gpteacher.roleplay-instruct.json');
  if (existsSync(gpt)) {
    for (const r of JSON.parse(readFileSync(gpt, 'utf8')) as Record<string, unknown>[]) {
      const input = str(r.input);
      instruct.push({ prompt: input ? `${str(r.instruction)}\n\n${input}` : str(r.instruction), response: str(r.response) });
    }
  }
  const seeds = join(sharedData, 'instruct', 'self-instruct.seed_tasks.jsonl');
  if (existsSync(seeds)) {
    for (const r of readJsonl(seeds)) {
      for (const inst of (r.instances as Record<string, unknown>[] | undefined) ?? []) {
        const input = str(inst.input);
        instruct.push({ prompt: input ? `${str(r.instruction)}\n\n${input}` : str(r.instruction), response: str(inst.output) });
      }
    }
  }
  const heldOutInstructTexts: string[] = [];
  const user = join(sharedData, 'instruct', 'self-instruct.user_oriented_instructions.jsonl');
  if (existsSync(user)) {
    for (const r of readJsonl(user)) {
      for (const inst of (r.instances as Record<string, unknown>[] | undefined) ?? []) {
        heldOutInstructTexts.push([str(r.instruction), str(inst.input), str(inst.output)].filter((x) => x).join('\n'));
      }
    }
  }
  if (trainText.length < 10000) throw new KvevictError(`${sharedData}: the training essays are missing or empty`);
  // keys: one word in ten (by hash) is kept for held-out needles
  const words = vocabularyOf(trainText);
  const ruler = new Set<string>([...RULER_NOUNS, ...RULER_ADJECTIVES, ...RULER_VERBS]);
  const trainWords = words.filter((w) => hashString(w) % 10 !== 0 && !ruler.has(w));
  const heldOutWords = words.filter((w) => hashString(w) % 10 === 0 || ruler.has(w));
  const items = instruct.filter((i) => i.prompt && i.response && clean(i.prompt) && clean(i.response));
  return {
    trainText,
    heldOutText,
    longbenchTrain,
    longbenchHeldOut,
    instruct: items,
    instructTexts: items.map((i) => `${i.prompt}\n${i.response}`),
    heldOutInstructTexts,
    trainWords,
    heldOutWords,
  };
}
