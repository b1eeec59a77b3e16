/**
 * kvevict against llama.cpp on the one real, externally trained model here (stories260K, a SentencePiece
 * GGUF): the same token ids for mixed text (non-ASCII, digits, spaces, newlines, special tokens), and the
 * same greedy continuation. Standalone: node dist/bench/tokenizer.js
 */
import { join } from 'node:path';
import { sharedData } from '../src/paths.js';
import { loadModelDir } from '../src/model/load.js';
import { LlamaModel } from '../src/model/llama.js';
import { generateFromTokens } from '../src/generate/pipeline.js';
import { llamaCppTokenizeAndGreedy } from './yardstick.js';
import { formatTable } from './table.js';

export const STORIES = join(sharedData, 'models', 'stories260K', 'stories260K.gguf');

export const TEXTS = [
  'Once upon a time, there was a little girl named Lily.',
  'She had 3 cats and 12 dogs; in 2024 she counted 1,234,567 of them!',
  '  two leading spaces, a tab\there, and\nnew lines\n\nand trailing spaces  ',
  'Ünïcödé: naïve café, Straße, Ελληνικά, 日本語, emoji 🎉 and ∑√ ≤.',
  '<s>a special token inside</s> the text, then more text',
  'Tom and Sue went to the park. "Look!" said Tom. They saw a big, red ball.',
];

export async function runBench(): Promise<object> {
  const m = loadModelDir(STORIES);
  const prompt = m.tokenizer.encode('Once upon a time', { addSpecialTokens: true });
  const steps = 32;
  const ours = generateFromTokens(new LlamaModel(m.config, m.weights), prompt, { maxNewTokens: steps, topLogprobs: 1 }).tokens;
  const theirs = await llamaCppTokenizeAndGreedy(STORIES, TEXTS, prompt, steps);
  const rows = TEXTS.map((t, i) => {
    const a = m.tokenizer.encode(t),
      b = theirs.ids[i];
    const same = a.length === b.length && a.every((x, j) => x === b[j]);
    return { text: JSON.stringify(t).slice(0, 40), kvevict: a.length, llamaCpp: b.length, same };
  });
  let agree = 0;
  while (agree < steps && ours[agree] === theirs.greedy[agree]) agree++;
  process.stdout.write(
    formatTable(
      'stories260K.gguf: token ids, kvevict against llama.cpp',
      ['text', 'kvevict ids', 'llama.cpp ids', 'identical'],
      rows.map((r) => [r.text, String(r.kvevict), String(r.llamaCpp), r.same ? 'yes' : 'NO']),
    ),
  );
  process.stdout.write(`greedy continuation of "Once upon a time" (BOS first): the first ${agree} of ${steps} tokens agree\n`);
  process.stdout.write(`  kvevict:   ${m.tokenizer.decode(ours)}\n  llama.cpp: ${m.tokenizer.decode(theirs.greedy)}\n`);
  return { model: STORIES, tokenization: rows, greedyAgreeing: agree, greedySteps: steps, kvevict: ours, llamaCpp: theirs.greedy };
}

if (process.argv[1]?.endsWith('tokenizer.js') && process.argv[1].includes('bench')) await runBench();
