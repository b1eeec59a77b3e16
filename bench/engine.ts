/**
 * Engine benchmark: SmolLM2-135M exact shapes (all 30 layers) with random weights.
 * Prefill and decode tokens/s at several context lengths, where prefill time goes (linear layers,
 * attention, the rest), the linear layers against sgemm alone on the same shapes, and peak RSS.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kernels, type Kernels } from '../src/kernels/index.js';
import type { ModelConfig } from '../src/model/config.js';
import { ForwardProfile, LlamaModel } from '../src/model/llama.js';
import { repoRoot } from '../src/paths.js';
import { Rng } from '../src/util/rng.js';
import { randomWeights, smolConfig } from '../test/helpers/random-model.js';

export interface EngineFigures {
  context: number;
  prefillTokPerS: number;
  prefillMs: number;
  linearMs: number;
  attentionMs: number;
  otherMs: number;
  /** the same linear-layer shapes through sgemm alone */
  sgemmOnlyMs: number;
  sgemmOnlyTokPerS: number;
  decodeTokPerS: number;
  decodeMsPerToken: number;
}

export interface EngineBenchResult {
  backend: string;
  model: string;
  contexts: EngineFigures[];
  peakRssMb: number;
}

const CONTEXTS = [512, 2048, 8192];
const DECODE_STEPS = 32;
const CHUNK = 512;

/** Time the prefill's linear layers alone: the same sgemm calls, chunk by chunk, layer by layer. */
function sgemmOnly(cfg: ModelConfig, k: Kernels, model: LlamaModel, tokens: number): number {
  const { hiddenSize: h, numHeads: H, numKvHeads: Hkv, headDim: d, intermediateSize: inter } = cfg;
  const x = new Float32Array(CHUNK * inter).fill(0.01);
  const y = new Float32Array(CHUNK * inter);
  const shapes: [number, number, (w: typeof model.weights.layers[number]) => Float32Array][] = [
    [H * d, h, (w) => w.q], [Hkv * d, h, (w) => w.k], [Hkv * d, h, (w) => w.v], [h, H * d, (w) => w.o],
    [inter, h, (w) => w.gate], [inter, h, (w) => w.up], [h, inter, (w) => w.down],
  ];
  const t0 = performance.now();
  for (let start = 0; start < tokens; start += CHUNK) {
    const n = Math.min(CHUNK, tokens - start);
    for (const w of model.weights.layers) {
      for (const [out, inp, pick] of shapes) k.sgemm(false, true, n, out, inp, 1, x, inp, pick(w), inp, 0, y, out);
    }
  }
  return performance.now() - t0;
}

function fmt(n: number, digits = 0): string {
  return n.toFixed(digits).padStart(8);
}

export async function runBench(contextsWanted: number[] = CONTEXTS): Promise<EngineBenchResult> {
  const CONTEXTS = contextsWanted;
  const k = kernels();
  // room for the decode steps after the longest context (random weights: the trained limit means nothing here)
  const cfg = smolConfig({ max_position_embeddings: Math.max(...CONTEXTS) + DECODE_STEPS });
  process.stderr.write(`engine bench: ${k.name} kernels, SmolLM2-135M shapes, ${cfg.numLayers} layers, random weights\n`);
  const weights = randomWeights(cfg, 1, 0.05);
  const model = new LlamaModel(cfg, weights, k);
  const rng = new Rng(2);
  const maxCtx = Math.max(...CONTEXTS);
  const tokens = Int32Array.from({ length: maxCtx + DECODE_STEPS }, () => rng.int(cfg.vocabSize));
  const positions = Int32Array.from({ length: maxCtx + DECODE_STEPS }, (_, i) => i);

  // warm up: code paths, scratch buffers, OpenBLAS threads
  model.forward({ tokens: tokens.subarray(0, CHUNK), positions: positions.subarray(0, CHUNK), cache: model.newCache() });

  const contexts: EngineFigures[] = [];
  for (const L of CONTEXTS) {
    const prof = new ForwardProfile();
    model.profile = prof;
    const cache = model.newCache();
    const t0 = performance.now();
    model.forward({ tokens: tokens.subarray(0, L), positions: positions.subarray(0, L), cache, chunk: CHUNK });
    const prefillMs = performance.now() - t0;
    const { linearMs, attentionMs, otherMs } = prof;
    model.profile = null;

    const one = new Int32Array(1);
    const pos = new Int32Array(1);
    const logits = new Float32Array(cfg.vocabSize);
    const t1 = performance.now();
    for (let i = 0; i < DECODE_STEPS; i++) {
      one[0] = tokens[L + i];
      pos[0] = L + i;
      model.forward({ tokens: one, positions: pos, cache, logitsOut: logits });
    }
    const decodeMs = (performance.now() - t1) / DECODE_STEPS;
    const sgemmMs = sgemmOnly(cfg, k, model, L);
    contexts.push({
      context: L, prefillMs, prefillTokPerS: (L / prefillMs) * 1000, linearMs, attentionMs, otherMs,
      sgemmOnlyMs: sgemmMs, sgemmOnlyTokPerS: (L / sgemmMs) * 1000, decodeMsPerToken: decodeMs, decodeTokPerS: 1000 / decodeMs,
    });
    process.stderr.write(`  context ${L}: prefill ${(L / prefillMs * 1000).toFixed(0)} tok/s, decode ${(1000 / decodeMs).toFixed(1)} tok/s\n`);
  }
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  const result: EngineBenchResult = { backend: k.name, model: 'SmolLM2-135M shapes (random weights, f32)', contexts, peakRssMb };

  const lines = [
    `engine (${k.name} kernels), SmolLM2-135M shapes, 30 layers, f32, prefill chunk ${CHUNK}`,
    ' context  prefill/s  linear ms  attn ms  other ms  sgemm ms  lin/sgemm  decode/s  ms/token',
  ];
  for (const c of contexts) {
    lines.push(`${fmt(c.context)} ${fmt(c.prefillTokPerS)}   ${fmt(c.linearMs)} ${fmt(c.attentionMs)} ${fmt(c.otherMs)}  ${fmt(c.sgemmOnlyMs)}   ${fmt(c.linearMs / c.sgemmOnlyMs, 2)} ${fmt(c.decodeTokPerS, 1)} ${fmt(c.decodeMsPerToken, 2)}`);
  }
  lines.push(`peak RSS ${peakRssMb.toFixed(0)} MB`);
  process.stdout.write(lines.join('\n') + '\n');
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'engine.json'), JSON.stringify(result, null, 2) + '\n');
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const wanted = process.argv.slice(2).map(Number).filter((n) => n > 0);
  await runBench(wanted.length ? wanted : CONTEXTS);
}
