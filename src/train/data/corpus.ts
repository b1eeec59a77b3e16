import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { sharedData } from '../../paths.js';
import { KvevictError } from '../../errors.js';
import { LONGBENCH_HELD_OUT_BELOW, heldOutEssayFiles, readEssay, trainingEssayFiles } from '../split.js';
import { hashString, vocabularyOf } from './words.js';

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
  instruct: InstructItem[];
  /** words for keys and filler: training keys and held-out keys are disjoint */
  trainWords: string[];
  heldOutWords: string[];
}

function readJsonl(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** Load the corpus from ../shared/data. */
export function loadCorpus(): Corpus {
  const trainText = trainingEssayFiles().map(readEssay).join('\n\n');
  const heldOutText = heldOutEssayFiles().map(readEssay).join('\n\n');
  const lb = join(sharedData, 'longbench', 'multi_news.jsonl');
  const longbenchTrain = existsSync(lb) ? readJsonl(lb).slice(LONGBENCH_HELD_OUT_BELOW).map((r) => str(r.context)).filter((c) => c.length > 200) : [];
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
  if (trainText.length < 10000) throw new KvevictError(`${sharedData}: the training essays are missing or empty`);
  // keys: one word in ten (by hash) is kept for held-out needles
  const words = vocabularyOf(trainText);
  const trainWords = words.filter((w) => hashString(w) % 10 !== 0);
  const heldOutWords = words.filter((w) => hashString(w) % 10 === 0);
  return { trainText, heldOutText, longbenchTrain, instruct: instruct.filter((i) => i.prompt && i.response), trainWords, heldOutWords };
}
