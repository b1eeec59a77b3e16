import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { sharedData } from '../../paths.js';
import { KvevictError } from '../../errors.js';

/** Which side of the held-out split a generated sample or a text comes from. */
export type Split = 'train' | 'heldout';

/**
 * The held-out split of the reference model's training data. Evaluation haystacks must come from
 * HELD_OUT_ESSAYS; training never reads them. They are the first eight essays in name order, so a
 * haystack built by concatenating the essays in sorted order starts with held-out text.
 */
export const HELD_OUT_ESSAYS: readonly string[] = [
  'addiction.txt',
  'aord.txt',
  'apple.txt',
  'avg.txt',
  'before.txt',
  'bias.txt',
  'boss.txt',
  'copy.txt',
];

/** LongBench multi_news samples with index < this are held out (evaluation); the rest may be trained on. */
export const LONGBENCH_HELD_OUT_BELOW = 100;

/** The needle-in-a-haystack benchmark's needle and question: never part of any training sequence. */
export const NIAH_NEEDLE = 'The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.';
export const NIAH_QUESTION = 'What is the best thing to do in San Francisco?';
/** Strings no training sequence may contain (checked by the data generator's tests). */
export const NEVER_TRAINED: readonly string[] = ['San Francisco', 'Dolores Park', 'eat a sandwich'];

export const essayDir = join(sharedData, 'haystack', 'PaulGrahamEssays');

function listEssays(): string[] {
  if (!existsSync(essayDir)) throw new KvevictError(`${essayDir}: essay folder not found (expected ../shared/data beside the repository)`);
  return readdirSync(essayDir)
    .filter((f) => f.endsWith('.txt'))
    .sort();
}

export function trainingEssayFiles(): string[] {
  return listEssays().filter((f) => !HELD_OUT_ESSAYS.includes(f));
}

export function heldOutEssayFiles(): string[] {
  return listEssays().filter((f) => HELD_OUT_ESSAYS.includes(f));
}

export function readEssay(file: string): string {
  return readFileSync(join(essayDir, file), 'utf8');
}

/** The held-out essays concatenated in name order: the evaluation haystack. */
export function heldOutHaystack(): string {
  return heldOutEssayFiles().map(readEssay).join('\n\n');
}
