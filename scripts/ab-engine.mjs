#!/usr/bin/env node
// Side-by-side engine timing of two checkouts (the code before and after a change), as docs/benchmarks.md
// reports them: run it alternately for each, with nothing else on the machine, and compare the ratios.
//   node scripts/ab-engine.mjs [CHECKOUT]   (default: this one; the checkout must be built: npm run build)
// SmolLM2-135M shapes, random weights: a 512-token prefill, then the median of four runs of 32 decode steps.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const load = (p) => import(pathToFileURL(join(root, 'dist', p)).href);
const { LlamaModel } = await load('src/model/llama.js');
const { randomWeights, smolConfig } = await load('test/helpers/random-model.js');
const cfg = smolConfig({ max_position_embeddings: 4096 });
const model = new LlamaModel(cfg, randomWeights(cfg, 1, 0.05));
const L = 512;
const tokens = Int32Array.from({ length: L }, (_, i) => 3 + ((i * 7919) % (cfg.vocabSize - 3)));
const cache = model.newCache();
let t = performance.now();
model.forward({ tokens, positions: Int32Array.from({ length: L }, (_, i) => i), cache });
const prefillMs = performance.now() - t;
const one = new Int32Array(1);
const at = new Int32Array(1);
const runs = [];
for (let r = 0; r < 4; r++) {
  const c = cache.clone();
  t = performance.now();
  for (let i = 0; i < 32; i++) {
    one[0] = 100 + i;
    at[0] = L + i;
    model.forward({ tokens: one, positions: at, cache: c });
  }
  runs.push(performance.now() - t);
}
runs.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    checkout: root,
    prefill512TokPerS: +((L / prefillMs) * 1000).toFixed(1),
    decodeMedianTokPerS: +((32 / runs[1]) * 1000).toFixed(2),
  }),
);
