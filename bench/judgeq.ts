/**
 * Judge Q costs on the embedded model's shape (its weights when models/kvevict-ref exists, else random
 * weights of the same shape: the timings do not depend on the values).
 * 1. Training throughput: one training example = prompt prefill (engine, no gradient), the response's
 *    attention target (engine), the soft rows' forward and backward; prompts/s and tokens/s per prompt length.
 * 2. Inference: the time Judge Q adds after the prefill (32 soft rows through the model over the prompt
 *    cache, scoring, selection) as a share of the prefill time, at 2K and 8K tokens (the model's context is
 *    raised to 16K for timing), next to SnapKV's selection time.
 * Standalone: node dist/bench/judgeq.js
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { param } from '../src/autograd/tensor.js';
import { kernels } from '../src/kernels/index.js';
import type { ModelConfig } from '../src/model/config.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadModelDir } from '../src/model/load.js';
import type { Weights } from '../src/model/types.js';
import { defaultModelDir } from '../src/paths.js';
import { prefill } from '../src/generate/pipeline.js';
import { makePress } from '../src/press/index.js';
import { SoftTokenQueries } from '../src/press/queries/soft-tokens.js';
import { loadSoftTokens, modelHash, saveSoftTokens } from '../src/press/queries/soft-tokens-file.js';
import { initParams } from '../src/train/params.js';
import { modelConfigOf } from '../src/train/pretrain.js';
import { responseAttention, exampleLoss } from '../src/train/judgeq/objective.js';
import { AppendedRows } from '../src/model/appended-rows.js';
import { Rng } from '../src/util/rng.js';
import { formatTable } from './table.js';
import { REFERENCE } from './train.js';

interface Subject {
  cfg: ModelConfig;
  weights: Weights;
  source: string;
}

function subject(): Subject {
  if (existsSync(join(defaultModelDir, 'config.json'))) {
    const m = loadModelDir(defaultModelDir);
    return { cfg: m.config, weights: m.weights, source: 'models/kvevict-ref' };
  }
  const cfg = modelConfigOf(REFERENCE);
  const p = initParams(cfg, 1);
  const weights: Weights = {
    embed: p.embed.data,
    finalNorm: p.finalNorm.data,
    lmHead: p.embed.data,
    layers: p.layers.map((l) => ({
      inputNorm: l.inputNorm.data,
      q: l.q.data,
      k: l.k.data,
      v: l.v.data,
      o: l.o.data,
      qBias: null,
      kBias: null,
      vBias: null,
      qNorm: null,
      kNorm: null,
      postNorm: l.postNorm.data,
      gate: l.gate.data,
      up: l.up.data,
      down: l.down.data,
    })),
  };
  return { cfg, weights, source: 'random weights in the reference shape' };
}

function tokens(n: number, seed: number, vocab: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => 32 + rng.int(Math.min(vocab, 256) - 32));
}

export interface TrainRow {
  length: number;
  response: number;
  prefillMs: number;
  targetMs: number;
  softMs: number;
  promptsPerS: number;
  tokensPerS: number;
}
export interface InferenceRow {
  length: number;
  prefillMs: number;
  softForwardMs: number;
  judgeqMs: number;
  snapkvMs: number;
  judgeqShare: number;
  softShare: number;
  snapkvShare: number;
}

export async function runBench(trainLengths = [512, 1024, 2048], inferLengths = [2048, 8192], repeats = 2): Promise<object> {
  const s = subject();
  const soft = 32,
    R = 64;
  const embeddings = new Rng(7).normalArray(soft * s.cfg.hiddenSize, 0.05);

  // 1. training throughput
  const model = new LlamaModel(s.cfg, s.weights);
  const forward = new AppendedRows(s.cfg, s.weights);
  const t = param(new Float32Array(embeddings), [soft, s.cfg.hiddenSize], 'soft');
  const trainRows: TrainRow[] = [];
  for (const L of trainLengths) {
    let pre = 0,
      tgt = 0,
      sf = 0;
    for (let i = 0; i <= repeats; i++) {
      const ex = { prompt: tokens(L, i, s.cfg.vocabSize), response: tokens(R, 100 + i, s.cfg.vocabSize) };
      const t0 = performance.now();
      const { cache } = prefill(model, ex.prompt);
      const t1 = performance.now();
      responseAttention(model, cache, ex.response);
      const t2 = performance.now();
      t.zeroGrad();
      exampleLoss(model, forward, { rows: t, lora: null, loss: 'mse' }, ex, true, 1, cache);
      const t3 = performance.now();
      if (i === 0) continue; // warm-up
      pre += t1 - t0;
      tgt += t2 - t1;
      // exampleLoss recomputes the target on the given cache: count only its soft part
      sf += t3 - t2 - (t2 - t1);
    }
    const per = (pre + tgt + sf) / repeats;
    trainRows.push({
      length: L,
      response: R,
      prefillMs: pre / repeats,
      targetMs: tgt / repeats,
      softMs: sf / repeats,
      promptsPerS: 1000 / per,
      tokensPerS: ((L + R) * 1000) / per,
    });
  }
  process.stdout.write(
    formatTable(
      `Judge Q training example (${s.source}; ${soft} soft tokens, response ${R} tokens, kernels ${kernels().name})`,
      ['prompt', 'prefill ms', 'target ms', 'soft fwd+bwd ms', 'prompts/s', 'tokens/s'],
      trainRows.map((r) => [r.length, r.prefillMs, r.targetMs, r.softMs, r.promptsPerS, r.tokensPerS]),
    ),
  );

  // 2. inference overhead (context raised for the 8K point; the model hash ignores max_position_embeddings)
  const longCfg: ModelConfig = { ...s.cfg, maxPositions: Math.max(s.cfg.maxPositions, 16384) };
  const long = new LlamaModel(longCfg, s.weights);
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-bench-judgeq-'));
  const file = join(dir, 'soft.safetensors');
  const t0h = performance.now();
  const hash = modelHash(longCfg, s.weights);
  const hashMs = performance.now() - t0h;
  saveSoftTokens(file, { embeddings, count: soft, hiddenSize: s.cfg.hiddenSize, modelHash: hash });
  const softTokens = loadSoftTokens(file);
  const inferRows: InferenceRow[] = [];
  for (const L of inferLengths) {
    const judgeq = makePress('judgeq', { budget: 128, soft: file });
    const snapkv = makePress('snapkv', { budget: 128 });
    let pre = 0,
      sfw = 0,
      jq = 0,
      sk = 0;
    for (let i = 0; i <= repeats; i++) {
      const ids = tokens(L, 50 + i, s.cfg.vocabSize);
      const a = performance.now();
      const run = prefill(long, ids, { record: [snapkv.capture(L)], eosTokenIds: [] });
      const b = performance.now();
      new SoftTokenQueries(softTokens).queries(run);
      const c = performance.now();
      await judgeq.compress(run);
      const d = performance.now();
      await snapkv.compress(run);
      const e = performance.now();
      if (i === 0) continue; // warm-up (the engine grows its RoPE tables past L once)
      pre += b - a;
      sfw += c - b;
      jq += d - c;
      sk += e - d;
    }
    inferRows.push({
      length: L,
      prefillMs: pre / repeats,
      softForwardMs: sfw / repeats,
      judgeqMs: jq / repeats,
      snapkvMs: sk / repeats,
      judgeqShare: jq / pre,
      softShare: sfw / pre,
      snapkvShare: sk / pre,
    });
  }
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(
    formatTable(
      `Judge Q at inference, budget 128 (${soft} soft tokens; model hash computed once per model: ${hashMs.toFixed(0)} ms, not counted)`,
      ['prompt', 'prefill ms', 'soft fwd ms', 'judgeq select ms', 'judgeq % of prefill', 'soft fwd %', 'snapkv select ms', 'snapkv %'],
      inferRows.map((r) => [
        r.length,
        r.prefillMs,
        r.softForwardMs,
        r.judgeqMs,
        100 * r.judgeqShare,
        100 * r.softShare,
        r.snapkvMs,
        100 * r.snapkvShare,
      ]),
    ),
  );
  return { source: s.source, kernels: kernels().name, softTokens: soft, hashMs, train: trainRows, inference: inferRows };
}

if (import.meta.url === `file://${process.argv[1]}`) await runBench();
