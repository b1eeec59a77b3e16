/**
 * Training throughput of the reference model's configuration: tokens/s of forward + backward + AdamW at
 * each curriculum length (the recipe's tokens per step), split into forward, backward and optimizer time.
 * Standalone: node dist/bench/train.js [LENGTH...]
 */
import { kernels } from '../src/kernels/index.js';
import { Tape } from '../src/autograd/tape.js';
import { beginBufferScope, endBufferScope } from '../src/autograd/buffers.js';
import { crossEntropy } from '../src/autograd/ops/cross-entropy.js';
import { AdamW, clipGradNorm } from '../src/train/adamw.js';
import { TrainModel } from '../src/train/model.js';
import { initParams, namedParams, countParams } from '../src/train/params.js';
import { DEFAULT_PRETRAIN, modelConfigOf } from '../src/train/pretrain.js';
import { loadCorpus } from '../src/train/data/corpus.js';
import { trainingBatch } from '../src/train/data/batch.js';
import { vocabByName } from '../src/train/data/vocab.js';
import { formatTable } from './table.js';

/** The configurations of the delivered models: v1 (byte-level) and v2 (scripts/train-ref-v2.sh). */
export const REFERENCE = { ...DEFAULT_PRETRAIN };
export const REFERENCE_V2 = {
  ...DEFAULT_PRETRAIN,
  vocab: 'smollm2:8192',
  layers: 8,
  hidden: 256,
  heads: 4,
  kvHeads: 2,
  intermediate: 768,
  ropeTheta: 100000,
  maxPositions: 8192,
  tokensPerStep: 4096,
};

export interface TrainBenchRow {
  length: number;
  tokensPerS: number;
  forwardMs: number;
  backwardMs: number;
  optimizerMs: number;
}

export async function runBench(
  lengths = [256, 512, 1024, 2048, 4096],
  steps = 2,
  ref = REFERENCE,
): Promise<{ kernels: string; parameters: number; rows: TrainBenchRow[] }> {
  const REFERENCE = ref;
  const vocab = vocabByName(ref.vocab);
  const cfg = modelConfigOf(REFERENCE, vocab);
  const params = initParams(cfg, 1);
  const list = namedParams(params).map((p) => p.tensor);
  const model = new TrainModel(cfg, params);
  const opt = new AdamW(list);
  const corpus = loadCorpus();
  const rows: TrainBenchRow[] = [];
  for (const length of lengths) {
    let fwd = 0,
      bwd = 0,
      optMs = 0,
      tokens = 0;
    for (let s = 0; s <= steps; s++) {
      const batch = trainingBatch(corpus, 1, s, 0, REFERENCE.tokensPerStep, [{ until: 2, lengths: [length] }], length, vocab);
      const t0 = performance.now();
      const tape = new Tape();
      beginBufferScope();
      const ce = crossEntropy(tape, model.logits(tape, batch), batch.targets, batch.weights);
      const t1 = performance.now();
      tape.backward(ce.loss);
      endBufferScope();
      const t2 = performance.now();
      clipGradNorm(list, 1);
      opt.step(1e-4);
      for (const p of list) p.zeroGrad();
      const t3 = performance.now();
      if (s === 0) continue; // warm-up
      fwd += t1 - t0;
      bwd += t2 - t1;
      optMs += t3 - t2;
      tokens += batch.tokens;
    }
    rows.push({
      length,
      tokensPerS: (tokens * 1000) / (fwd + bwd + optMs),
      forwardMs: fwd / steps,
      backwardMs: bwd / steps,
      optimizerMs: optMs / steps,
    });
  }
  process.stdout.write(
    formatTable(
      `training step, ${countParams(params)} parameters, ${REFERENCE.tokensPerStep} tokens per step, kernels ${kernels().name}`,
      ['length', 'tokens/s', 'forward ms', 'backward ms', 'optimizer ms'],
      rows.map((r) => [r.length, r.tokensPerS, r.forwardMs, r.backwardMs, r.optimizerMs]),
    ),
  );
  return { kernels: kernels().name, parameters: countParams(params), rows };
}

if (process.argv[1]?.endsWith('train.js') && process.argv[1].includes('bench')) {
  const lengths = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0);
  await runBench(lengths.length ? lengths : undefined, 2, process.argv.includes('--v2') ? REFERENCE_V2 : REFERENCE);
}
