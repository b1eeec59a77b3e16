#!/usr/bin/env node
// Which ids of the second reference model's vocabulary its training never showed it, and a copy of the model
// whose tokenizer cannot produce them. The training batches are a pure function of (seed, step), so every
// EVERY-th step's batch is rebuilt with the recipe of scripts/train-ref-v2.sh (the runs of vocabulary pieces only
// from step 5,840, as run) and its ids counted. An id never seen there has an embedding that had (almost) no
// training signal; text that tokenizes into it (a held-out name such as " Francis" of "San Francisco") reads as
// noise to the model. The copy drops the BPE merges that make such ids (at most THRESHOLD sightings), so the
// same text comes out as pieces the model was trained on; ids and weights are unchanged.
//   node scripts/unseen-tokens.mjs OUT_DIR [--every 10] [--threshold 0] [--model models/kvevict-ref-v2]
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const load = (p) => import(pathToFileURL(join(root, 'dist', 'src', p)).href);
const { loadCorpus } = await load('train/data/corpus.js');
const { trainingBatch } = await load('train/data/batch.js');
const { smolLM2Vocab } = await load('train/data/vocab.js');
const { parseCurriculum } = await load('cli/pretrain.js');

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const out = args[0];
if (!out || out.startsWith('--')) {
  console.error('usage: node scripts/unseen-tokens.mjs OUT_DIR [--every 10] [--threshold 0] [--model models/kvevict-ref-v2]');
  process.exit(2);
}
const every = Number(flag('--every', '10'));
const threshold = Number(flag('--threshold', '0'));
const model = flag('--model', join(root, 'models', 'kvevict-ref-v2'));

// scripts/train-ref-v2.sh: seed 2, 6,000 steps of 4,096 tokens, this curriculum; pieces from step 5,840
const curriculum = parseCurriculum(
  '0.03:256;0.25:256,512@copy;0.4:512,1024;0.55:1024,2048@retrieve;0.7:2048@lookup;0.85:2048,4096@retrieve;0.8576:2048,4096@retrieve;0.93:1024,2048@bind;0.97:4096@bind;1.01:8192@bind',
);
const STEPS = 6000,
  PIECES_FROM = 5840;
const vocab = smolLM2Vocab(8192);
const withoutPieces = { ...vocab, pieces: undefined };
const corpus = loadCorpus();
const counts = new Float64Array(vocab.size);
let sampled = 0;
for (let step = 0; step < STEPS; step += every) {
  const b = trainingBatch(corpus, 2, step, step / STEPS, 4096, curriculum, 8192, step < PIECES_FROM ? withoutPieces : vocab);
  for (const id of b.ids) counts[id]++;
  sampled += b.ids.length;
}

const json = structuredClone(vocab.tokenizerJson());
const ids = json.model.vocab;
const pair = (m) => (Array.isArray(m) ? m : m.split(' '));
const rare = (m) => {
  const [a, b] = pair(m);
  const id = ids[a + b];
  return id !== undefined && counts[id] <= threshold;
};
const before = json.model.merges.length;
json.model.merges = json.model.merges.filter((m) => !rare(m));
cpSync(model, out, { recursive: true });
rmSync(join(out, 'heldout-eval.json'), { force: true }); // the original tokenizer's figures
writeFileSync(join(out, 'tokenizer.json'), JSON.stringify(json));
const unseen = counts.filter((c) => c <= threshold).length;
writeFileSync(
  join(out, 'unseen-tokens.json'),
  JSON.stringify({ every, threshold, sampledTokens: sampled, unseen, counts: Array.from(counts) }),
);
console.log(
  `${sampled} training tokens sampled (every ${every}th step): ${unseen} of ${vocab.size} ids seen at most ${threshold} times; ` +
    `merges ${before} -> ${json.model.merges.length}; ${out} holds the model with that tokenizer`,
);
