/**
 * Engine benchmark: SmolLM2-135M exact shapes (all 30 layers) with random weights.
 * Prefill and decode tokens/s at several context lengths; where prefill time goes (linear layers, attention,
 * the rest); the linear layers against sgemm alone on the same shapes; peak RSS; and llama.cpp on the same
 * weights as GGUF F32, measured in the same run. The same again with f16 weights in memory (the engine's
 * `weights: 'f16'`) against llama.cpp on a GGUF F16 of the same weights: like against like.
 *
 * Standalone: node dist/bench/engine.js [CONTEXT...] [--no-llama-cpp]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KvCache } from '../src/cache/kv-cache.js';
import { kernels, type Kernels } from '../src/kernels/index.js';
import type { ModelConfig } from '../src/model/config.js';
import { writeGguf } from '../src/model/gguf.js';
import { ForwardProfile, LlamaModel, type ForwardSection } from '../src/model/llama.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { LINEAR_NAMES, linearShape } from '../src/model/weights.js';
import { Rng } from '../src/util/rng.js';
import { randomWeights, smolConfig, smolDir } from '../test/helpers/random-model.js';
import { peakRssBytes, runAndRecord } from './record.js';
import { formatTable } from './table.js';
import { ensureYardstick, llamaCppBench } from './yardstick.js';

export interface LlamaCppFigures {
  /** 2 threads */
  prefillTokPerS: number;
  decodeTokPerS: number;
  /** 1 thread */
  decode1ThreadTokPerS: number;
  /** the better of the two thread settings */
  bestDecodeTokPerS: number;
}

export interface EngineFigures {
  context: number;
  prefillMs: number;
  /** with the cache allocated and touched beforehand (as llama.cpp's context) */
  prefillTokPerS: number;
  /** into a fresh cache: includes touching its memory for the first time */
  prefillColdTokPerS: number;
  /** prefill time by section (ms), of the fastest repetition */
  sections: Record<ForwardSection, number>;
  linearMs: number;
  attentionMs: number;
  otherMs: number;
  /** the prefill's linear-layer shapes through sgemm alone */
  sgemmOnlyMs: number;
  sgemmOnlyTokPerS: number;
  /** the engine's linear layers over sgemm alone (target <= 1.3) */
  linearOverSgemm: number;
  /** median decode step over every repetition */
  decodeMsPerToken: number;
  /** 1000 / decodeMsPerToken */
  decodeMedianTokPerS: number;
  /** a decode step's time by section (ms per token, mean over every step of every repetition) */
  decodeSections: Record<ForwardSection, number>;
  /** the best round's decode (steps over their summed time), the statistic llama.cpp's figure is */
  decodeTokPerS: number;
  llamaCpp: LlamaCppFigures | null;
  /** engine prefill over llama.cpp's (target >= 2.5 at 2048 and 8192) */
  prefillRatio: number | null;
  /** engine decode over llama.cpp's better thread setting, best round against best round (target >= 1.5) */
  decodeRatio: number | null;
  /** the engine's median step against llama.cpp's best round (the more conservative reading) */
  decodeMedianRatio: number | null;
}

export interface EngineBenchResult {
  backend: string;
  model: string;
  prefillChunk: number;
  decodeSteps: number;
  /** float32 weights, against llama.cpp F32 */
  contexts: EngineFigures[];
  /** f16 weights in memory, against llama.cpp F16 (llamaCpp, ratios); decodeOverLlamaCppF32 compares with F32 */
  f16: (EngineFigures & { decodeOverLlamaCppF32: number | null })[];
  peakRssMb: number;
  llamaCpp: string;
}

const CONTEXTS = [512, 2048, 8192];
const DECODE_STEPS = 32;
const CHUNK = 512;

/** The prefill's linear layers alone: the same sgemm calls, chunk by chunk, layer by layer (lm head: one sgemv). */
function sgemmOnly(cfg: ModelConfig, k: Kernels, model: LlamaModel, tokens: number): number {
  const x = new Float32Array(CHUNK * cfg.intermediateSize).fill(0.01);
  const y = new Float32Array(CHUNK * cfg.intermediateSize);
  const logits = new Float32Array(cfg.vocabSize);
  const t0 = performance.now();
  for (let start = 0; start < tokens; start += CHUNK) {
    const n = Math.min(CHUNK, tokens - start);
    model.weights.layers.forEach((w, l) => {
      for (const name of LINEAR_NAMES) {
        // as the engine: the last layer needs only the keys and values of a prefill's rows (the last row's
        // other projections are single-row products, left out here)
        if (l === cfg.numLayers - 1 && name !== 'k' && name !== 'v') continue;
        const [out, inp] = linearShape(cfg, name);
        k.sgemm(false, true, n, out, inp, 1, x, inp, w[name] as Float32Array, inp, 0, y, out);
      }
    });
  }
  k.sgemv(cfg.vocabSize, cfg.hiddenSize, model.weights.lmHead, x, logits);
  return performance.now() - t0;
}

/** Rounds per context: short ones are cheap, and more rounds let both sides meet a quiet moment of the machine. */
const repetitions = (context: number): number => (context <= 512 ? 6 : context <= 2048 ? 4 : 2);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

interface PrefillRun {
  prefillMs: number;
  sections: Record<ForwardSection, number>;
  linearMs: number;
  attentionMs: number;
  otherMs: number;
  /** each decode step's time */
  stepMs: number[];
  /** summed over the decode steps */
  decodeSections: Record<ForwardSection, number>;
}

/** One prefill of L tokens into a ready cache (allocated and touched, as llama.cpp's context), then DECODE_STEPS steps. */
function prefillAndDecode(model: LlamaModel, cfg: ModelConfig, tokens: Int32Array, positions: Int32Array, L: number): PrefillRun {
  const cache = model.newCache();
  for (const layer of cache.layers) {
    for (const head of layer) {
      head.reserve(L + DECODE_STEPS);
      head.keyData.fill(0);
      head.valueData.fill(0);
      head.positions.fill(0);
    }
  }
  const prof = new ForwardProfile();
  model.profile = prof;
  const t0 = performance.now();
  model.forward({ tokens: tokens.subarray(0, L), positions: positions.subarray(0, L), cache, chunk: CHUNK });
  const prefillMs = performance.now() - t0;
  model.profile = null;

  const one = new Int32Array(1);
  const pos = new Int32Array(1);
  const logits = new Float32Array(cfg.vocabSize);
  const stepMs: number[] = [];
  const sections = { ...prof.ms };
  const decodeProf = new ForwardProfile();
  model.profile = decodeProf;
  for (let i = 0; i < DECODE_STEPS; i++) {
    one[0] = tokens[L + i];
    pos[0] = L + i;
    const t = performance.now();
    model.forward({ tokens: one, positions: pos, cache, logitsOut: logits });
    stepMs.push(performance.now() - t);
  }
  model.profile = null;
  release(cache);
  return {
    prefillMs,
    sections,
    linearMs: prof.linearMs,
    attentionMs: prof.attentionMs,
    otherMs: prof.otherMs,
    stepMs,
    decodeSections: { ...decodeProf.ms },
  };
}

/** Drop a cache's memory now rather than when the cache object goes. */
function release(cache: KvCache): void {
  for (const layer of cache.layers) for (const head of layer) head.retain(new Int32Array(0));
}

/**
 * llama.cpp once at one context: prefill and decode on 2 threads, and (when `oneThread`) decode on 1, whose
 * prefill on one thread takes minutes at 8K (-Infinity when not measured).
 */
async function llamaCppOnce(file: string, context: number, oneThread: boolean): Promise<LlamaCppFigures> {
  const two = await llamaCppBench(file, { promptTokens: context, decodeTokens: DECODE_STEPS, threads: 2 });
  const one = oneThread
    ? (await llamaCppBench(file, { promptTokens: context, decodeTokens: DECODE_STEPS, threads: 1 })).decodeTokPerS
    : -Infinity;
  return {
    prefillTokPerS: two.prefillTokPerS,
    decodeTokPerS: two.decodeTokPerS,
    decode1ThreadTokPerS: one,
    bestDecodeTokPerS: Math.max(two.decodeTokPerS, one),
  };
}

/** The better of two llama.cpp measurements, figure by figure. */
function bestOf(a: LlamaCppFigures | null, b: LlamaCppFigures): LlamaCppFigures {
  if (!a) return b;
  return {
    prefillTokPerS: Math.max(a.prefillTokPerS, b.prefillTokPerS),
    decodeTokPerS: Math.max(a.decodeTokPerS, b.decodeTokPerS),
    decode1ThreadTokPerS: Math.max(a.decode1ThreadTokPerS, b.decode1ThreadTokPerS),
    bestDecodeTokPerS: Math.max(a.bestDecodeTokPerS, b.bestDecodeTokPerS),
  };
}

/** One weights format of the engine, and the GGUF llama.cpp runs for it (null: llama.cpp not measured). */
interface Side {
  format: 'f32' | 'f16';
  model: LlamaModel;
  gguf: string | null;
  dtype: 'f32' | 'f16';
}

/** Prefill into a fresh cache, whose memory the prefill touches first (slow on some machines: page faults). */
function coldPrefillMs(model: LlamaModel, tokens: Int32Array, positions: Int32Array, L: number): number {
  const cold = model.newCache();
  const t = performance.now();
  model.forward({ tokens: tokens.subarray(0, L), positions: positions.subarray(0, L), cache: cold, chunk: CHUNK, logits: 'none' });
  const ms = performance.now() - t;
  release(cold);
  return ms;
}

/**
 * Every side at context L: repetitions in rounds, each round the engine then llama.cpp for each side, so that
 * both meet the same moments of a shared machine; the best of the rounds for each (a round's decode: its steps over
 * their summed time, as llama.cpp's); the engine's median step over every round is kept as the conservative reading.
 */
async function measureContext(
  sides: Side[],
  cfg: ModelConfig,
  tokens: Int32Array,
  positions: Int32Array,
  L: number,
  coldMs: Map<Side, number>,
): Promise<EngineFigures[]> {
  const runs = sides.map(() => ({
    best: null as PrefillRun | null,
    stepMs: [] as number[],
    bestDecodeTokPerS: 0,
    decodeSections: new ForwardProfile().ms,
    sgemmMs: Infinity,
    llamaCpp: null as LlamaCppFigures | null,
  }));
  const reps = repetitions(L);
  for (let r = 0; r < reps; r++) {
    for (const [i, side] of sides.entries()) {
      const acc = runs[i];
      const run = prefillAndDecode(side.model, cfg, tokens, positions, L);
      if (!acc.best || run.prefillMs < acc.best.prefillMs) acc.best = run;
      acc.stepMs.push(...run.stepMs);
      acc.bestDecodeTokPerS = Math.max(acc.bestDecodeTokPerS, (run.stepMs.length / run.stepMs.reduce((a, b) => a + b, 0)) * 1000);
      for (const key of Object.keys(acc.decodeSections) as ForwardSection[])
        acc.decodeSections[key] += run.decodeSections[key] / (reps * DECODE_STEPS);
      if (side.format === 'f32') acc.sgemmMs = Math.min(acc.sgemmMs, sgemmOnly(cfg, side.model.k, side.model, L));
      // beyond 2048 tokens llama.cpp's one-thread decode is measured in the first round only (far behind two threads there)
      if (side.gguf) acc.llamaCpp = bestOf(acc.llamaCpp, await llamaCppOnce(side.gguf, L, r === 0 || L <= 2048));
    }
  }
  return sides.map((side, i) => {
    const { best, stepMs, bestDecodeTokPerS, decodeSections, sgemmMs, llamaCpp } = runs[i];
    const { prefillMs, sections, linearMs, attentionMs, otherMs } = best!;
    const decodeMs = median(stepMs);
    const cold = coldMs.get(side)!;
    const f: EngineFigures = {
      context: L,
      prefillMs,
      prefillTokPerS: (L / prefillMs) * 1000,
      prefillColdTokPerS: (L / cold) * 1000,
      sections,
      linearMs,
      attentionMs,
      otherMs,
      sgemmOnlyMs: sgemmMs,
      sgemmOnlyTokPerS: (L / sgemmMs) * 1000,
      linearOverSgemm: linearMs / sgemmMs,
      decodeMsPerToken: decodeMs,
      decodeMedianTokPerS: 1000 / decodeMs,
      decodeTokPerS: bestDecodeTokPerS,
      decodeSections,
      llamaCpp,
      prefillRatio: llamaCpp ? ((L / prefillMs) * 1000) / llamaCpp.prefillTokPerS : null,
      decodeRatio: llamaCpp ? bestDecodeTokPerS / llamaCpp.bestDecodeTokPerS : null,
      decodeMedianRatio: llamaCpp ? 1000 / decodeMs / llamaCpp.bestDecodeTokPerS : null,
    };
    const lc = llamaCpp
      ? `; llama.cpp ${side.dtype} prefill ${llamaCpp.prefillTokPerS.toFixed(0)}, decode ${llamaCpp.decodeTokPerS.toFixed(1)} (1 thread ${llamaCpp.decode1ThreadTokPerS.toFixed(1)})`
      : '';
    process.stderr.write(
      `  ${side.format} weights, context ${L}: prefill ${f.prefillTokPerS.toFixed(0)} tok/s (cold ${f.prefillColdTokPerS.toFixed(0)}), decode ${f.decodeTokPerS.toFixed(1)} tok/s${lc}\n`,
    );
    return f;
  });
}

export async function runBench(contexts: number[] = CONTEXTS, opts: { llamaCpp?: boolean } = {}): Promise<EngineBenchResult> {
  const k = kernels();
  const maxCtx = Math.max(...contexts);
  // room for the decode steps after the longest context (random weights: the trained limit means nothing here)
  const cfg = smolConfig({ max_position_embeddings: Math.max(8192, maxCtx + DECODE_STEPS) });
  process.stderr.write(`engine bench: ${k.name} kernels, SmolLM2-135M shapes, ${cfg.numLayers} layers, random weights\n`);
  const weights = randomWeights(cfg, 1, 0.05);
  const model = new LlamaModel(cfg, weights, k);
  const rng = new Rng(2);
  const tokens = Int32Array.from({ length: maxCtx + DECODE_STEPS }, () => 100 + rng.int(20000));
  const positions = Int32Array.from({ length: maxCtx + DECODE_STEPS }, (_, i) => i);

  let ggufDir: string | null = null;
  try {
    // warm up: code paths, scratch buffers, OpenBLAS threads
    model.forward({ tokens: tokens.subarray(0, CHUNK), positions: positions.subarray(0, CHUNK), cache: model.newCache() });
    const half = new LlamaModel(cfg, weights, k, { weights: 'f16' });
    half.forward({ tokens: tokens.subarray(0, CHUNK), positions: positions.subarray(0, CHUNK), cache: half.newCache() });
    const sides: Side[] = [
      { format: 'f32', model, gguf: null, dtype: 'f32' },
      { format: 'f16', model: half, gguf: null, dtype: 'f16' },
    ];
    const cold = contexts.map(() => new Map<Side, number>());
    contexts.forEach((L, i) => {
      for (const side of sides) cold[i].set(side, coldPrefillMs(side.model, tokens, positions, L));
    });
    // before llama.cpp and the GGUF writer add their own memory
    const peakRssMb = peakRssBytes() / 2 ** 20;

    let llamaCppNote = 'not measured (--no-llama-cpp)';
    if (opts.llamaCpp !== false) {
      if (await ensureYardstick()) {
        ggufDir = mkdtempSync(join(tmpdir(), 'kvevict-engine-bench-'));
        const tok = Tokenizer.fromDir(smolDir);
        for (const side of sides) {
          side.gguf = join(ggufDir, `smollm2-135m-random-${side.format}.gguf`);
          writeGguf(side.gguf, cfg, weights, tok, { dtype: side.dtype, name: 'SmolLM2-135M shapes, random weights' });
        }
        llamaCppNote =
          "llama.cpp via node-llama-cpp (bench/yardstick), same weights as GGUF F32 (and F16 for the f16 rows), CPU; prefill on 2 threads, decode on the better of 1 and 2; its repetitions alternate with the engine's";
      } else {
        llamaCppNote = 'not measured (node-llama-cpp could not be installed)';
      }
    }
    const figures: EngineFigures[] = [];
    const f16Figures: EngineBenchResult['f16'] = [];
    for (const [i, L] of contexts.entries()) {
      const [f32At, f16At] = await measureContext(sides, cfg, tokens, positions, L, cold[i]);
      figures.push(f32At);
      f16Figures.push({ ...f16At, decodeOverLlamaCppF32: f32At.llamaCpp ? f16At.decodeTokPerS / f32At.llamaCpp.bestDecodeTokPerS : null });
    }

    const ratio = (x: number | null) => (x === null ? '-' : x);
    process.stdout.write(
      formatTable(
        `engine (${k.name} kernels), SmolLM2-135M shapes, 30 layers, f32, random weights; prefill chunk ${CHUNK}, decode ${DECODE_STEPS} tokens after the prompt`,
        [
          'context',
          'prefill tok/s',
          'cold',
          'llama.cpp',
          'ratio',
          'decode tok/s',
          'llama.cpp best',
          'ratio',
          'median step ratio',
          'linear ms',
          'attention ms',
          'other ms',
          'sgemm alone ms',
          'linear/sgemm',
        ],
        figures.map((f) => [
          f.context,
          f.prefillTokPerS,
          f.prefillColdTokPerS,
          f.llamaCpp ? f.llamaCpp.prefillTokPerS : '-',
          ratio(f.prefillRatio),
          f.decodeTokPerS,
          f.llamaCpp ? f.llamaCpp.bestDecodeTokPerS : '-',
          ratio(f.decodeRatio),
          ratio(f.decodeMedianRatio),
          f.linearMs,
          f.attentionMs,
          f.otherMs,
          f.sgemmOnlyMs,
          f.linearOverSgemm,
        ]),
      ),
    );
    process.stdout.write(
      formatTable(
        `the same with f16 weights in memory (LlamaModel weights: 'f16'), against llama.cpp on the same weights as GGUF F16`,
        [
          'context',
          'prefill tok/s',
          'llama.cpp F16',
          'ratio',
          'decode tok/s',
          'llama.cpp F16 best',
          'ratio',
          'over llama.cpp F32',
          'linear ms',
          'attention ms',
        ],
        f16Figures.map((f) => [
          f.context,
          f.prefillTokPerS,
          f.llamaCpp ? f.llamaCpp.prefillTokPerS : '-',
          ratio(f.prefillRatio),
          f.decodeTokPerS,
          f.llamaCpp ? f.llamaCpp.bestDecodeTokPerS : '-',
          ratio(f.decodeRatio),
          ratio(f.decodeOverLlamaCppF32),
          f.linearMs,
          f.attentionMs,
        ]),
      ),
    );
    process.stdout.write(
      formatTable(
        'decode step by section with f16 weights (ms per token, mean)',
        ['context', ...Object.keys(f16Figures[0]?.decodeSections ?? {})],
        f16Figures.map((f) => [f.context, ...Object.values(f.decodeSections)]),
      ),
    );
    process.stdout.write(
      formatTable(
        'prefill time by section (ms)',
        ['context', ...Object.keys(figures[0]?.sections ?? {})],
        figures.map((f) => [f.context, ...Object.values(f.sections)]),
      ),
    );
    process.stdout.write(
      formatTable(
        'decode step by section (ms per token, mean)',
        ['context', ...Object.keys(figures[0]?.decodeSections ?? {})],
        figures.map((f) => [f.context, ...Object.values(f.decodeSections)]),
      ),
    );
    process.stdout.write(
      `best of ${repetitions(512)} rounds at 512 tokens, ${repetitions(2048)} at 2048 and ${repetitions(8192)} beyond (llama.cpp's one-thread decode there in the first), each round the engine then llama.cpp (f32 then f16), so both meet the same moments of the machine; a round's decode: its ${DECODE_STEPS} steps over their summed time, for both; median step ratio: the engine's median step over every round against llama.cpp's best round\n`,
    );
    process.stdout.write(
      `cold: prefill into a fresh cache (its first-touch page faults included); the other figures allocate and touch the cache first, as llama.cpp does when it creates its context\n`,
    );
    process.stdout.write(
      `peak RSS ${peakRssMb.toFixed(0)} MB; targets: prefill >= 2.5x llama.cpp at 2048 and 8192, linear/sgemm <= 1.3, decode >= 1.5x llama.cpp's better thread setting\n`,
    );
    return {
      backend: k.name,
      model: 'SmolLM2-135M shapes (random weights, f32)',
      prefillChunk: CHUNK,
      decodeSteps: DECODE_STEPS,
      contexts: figures,
      f16: f16Figures,
      peakRssMb,
      llamaCpp: llamaCppNote,
    };
  } finally {
    if (ggufDir) rmSync(ggufDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const wanted = args.map(Number).filter((n) => Number.isInteger(n) && n > 0);
  await runAndRecord('engine', () => runBench(wanted.length ? wanted : CONTEXTS, { llamaCpp: !args.includes('--no-llama-cpp') }));
}
