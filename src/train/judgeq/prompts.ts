/**
 * Judge Q's training and held-out prompts, built from ../shared/data: long contexts with questions (the
 * reference model's synthetic retrieval and aggregation tasks, and questions about essay passages) and
 * instructions. Training prompts come from the training split only; held-out prompts from the held-out
 * essays and keys, and a tenth of the instructions that training never sees.
 */
import type { Tokenizer } from '../../model/tokenizer.js';
import { Rng } from '../../util/rng.js';
import { loadCorpus, type Corpus } from '../data/corpus.js';
import { userMessage } from '../data/encode.js';
import { haystackSlice } from '../data/haystack.js';
import { makeDialogue, TASKS, type Split, type TaskName } from '../data/tasks.js';
import { hashString } from '../data/words.js';
import { NEVER_TRAINED } from '../../eval/datasets/split.js';

export type PromptKind = TaskName | 'essay_question';

export interface JudgeqPrompt {
  kind: PromptKind;
  /** chat-template token ids, generation prompt included */
  tokens: Int32Array;
}

export interface PromptSetOptions {
  count: number;
  split: Split;
  seed: number;
  /** context lengths are drawn log-uniformly in [minLength, maxLength] tokens; longer prompts are redrawn */
  minLength: number;
  maxLength: number;
}

/** Questions about a passage of essay text (the answer is whatever the model says). */
const ESSAY_QUESTIONS: readonly string[] = [
  'Summarize the text above in one sentence.',
  'What is the main idea of the text above?',
  'Quote the first sentence of the text above.',
  'Quote the last sentence of the text above.',
  'Which people or companies are mentioned in the text above?',
  'Give the text above a short title.',
  'List three key points of the text above.',
  'What does the author of the text above recommend?',
];

/** Synthetic tasks (instructions are drawn separately, so they are not weighted twice). */
const CONTEXT_TASKS: readonly TaskName[] = TASKS.filter((t) => t !== 'instruct');

function heldOutInstruction(prompt: string): boolean {
  return hashString(prompt) % 10 === 0;
}

/**
 * `count` prompts, deterministic in (seed, split): half synthetic tasks, a quarter essay questions, a quarter
 * instructions. Prompts containing the needle benchmark's strings are skipped.
 */
export function buildPrompts(tok: Tokenizer, o: PromptSetOptions, corpus: Corpus = loadCorpus()): JudgeqPrompt[] {
  const rng = new Rng(hashString(`judgeq:${o.split}:${o.seed}`));
  const instructions = corpus.instruct.filter((i) => heldOutInstruction(i.prompt) === (o.split === 'heldout'));
  const essays = o.split === 'train' ? corpus.trainText : corpus.heldOutText;
  const out: JudgeqPrompt[] = [];
  const seen = new Set<string>();
  for (let tries = 0; out.length < o.count && tries < o.count * 20; tries++) {
    const length = Math.round(o.minLength * Math.pow(o.maxLength / o.minLength, rng.next()));
    const r = rng.next();
    let kind: PromptKind;
    let content: string;
    if (r < 0.5) {
      kind = rng.pick(CONTEXT_TASKS);
      const d = makeDialogue(kind, rng, corpus, o.split, length);
      content = userMessage(d.context, d.turns[0].question);
    } else if (r < 0.75 || instructions.length === 0) {
      kind = 'essay_question';
      content = userMessage(haystackSlice(rng, essays, Math.max(64, length - 64)).trim(), rng.pick(ESSAY_QUESTIONS));
    } else {
      kind = 'instruct';
      content = rng.pick(instructions).prompt;
    }
    if (NEVER_TRAINED.some((s) => content.includes(s)) || seen.has(content)) continue;
    const tokens = Int32Array.from(tok.encodeChat([{ role: 'user', content }], { addGenerationPrompt: true }));
    if (tokens.length > o.maxLength || tokens.length < 8) continue;
    seen.add(content);
    out.push({ kind, tokens });
  }
  return out;
}
