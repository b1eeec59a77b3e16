/**
 * llama.cpp, through node-llama-cpp, as the speed yardstick: prefill and decode tokens/s of a GGUF model on
 * the CPU. node-llama-cpp lives in its own package (bench/yardstick/) so that it never enters kvevict's
 * dependencies or lockfile; ensureYardstick() installs it there on first use from the npm registry, with
 * the prebuilt linux-x64 binaries only (no CUDA/Vulkan downloads, no install scripts, no source builds).
 *
 * runBench() writes SmolLM2-135M-shaped random weights as GGUF (F32, and F16 as llama.cpp usually runs)
 * and measures them at the same prompt length and thread counts as the engine benchmark.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeGguf } from '../src/model/gguf.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { repoRoot, sharedData } from '../src/paths.js';
import { randomWeights, smolConfig } from '../test/helpers/random-model.js';
import { formatTable } from './table.js';

export const yardstickDir = join(repoRoot, 'bench', 'yardstick');
const entry = join(yardstickDir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');

/** Install node-llama-cpp into bench/yardstick when it is missing; false (with one line on stderr) when that fails. */
export async function ensureYardstick(): Promise<boolean> {
  if (existsSync(entry)) return true;
  // --omit=optional: the optional dependencies are every platform's and GPU's binaries (package.json names the
  // linux-x64 one itself). `npm ci` refuses this lockfile (npm leaves other platforms' optional packages out of
  // it), so `npm install --no-save` follows the committed lockfile without rewriting it.
  const args = ['install', '--omit=optional', '--ignore-scripts', '--no-save', '--no-audit', '--no-fund', '--loglevel=error'];
  process.stderr.write(`yardstick: npm ${args.join(' ')} in ${yardstickDir}\n`);
  const r = spawnSync('npm', args, { cwd: yardstickDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0 || !existsSync(entry)) {
    const why = r.error?.message ?? `${r.stderr ?? ''}`.trim().split('\n').filter((l) => !/^npm warn/i.test(l))[0] ?? `exit ${r.status}`;
    process.stderr.write(`yardstick: node-llama-cpp could not be installed (${why})\n`);
    return false;
  }
  return true;
}

export interface LlamaCppBenchOptions {
  promptTokens: number;
  decodeTokens: number;
  threads: number;
}

export interface LlamaCppBenchResult {
  prefillTokPerS: number;
  decodeTokPerS: number;
}

// The few node-llama-cpp types used here (its own typings are not part of this package's build).
interface NlcSequence {
  clearHistory(): Promise<void>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  evaluate(tokens: number[], options?: { temperature?: number }): AsyncGenerator<number, void, void | number | number[]>;
}
interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}
interface NlcModel {
  readonly tokens: { readonly bos: number | null; readonly eos: number | null };
  readonly fileInfo: { metadata: { llama?: { vocab_size?: number } } };
  createContext(options: { contextSize: number; batchSize: number; threads: number; sequences: number }): Promise<NlcContext>;
  dispose(): Promise<void>;
}
interface NlcLlama {
  loadModel(options: { modelPath: string; gpuLayers: number }): Promise<NlcModel>;
  dispose(): Promise<void>;
}
interface NlcModule {
  getLlama(options: Record<string, unknown>): Promise<NlcLlama>;
}

let llamaPromise: Promise<NlcLlama> | null = null;

async function llama(): Promise<NlcLlama> {
  if (!(await ensureYardstick())) throw new Error('node-llama-cpp is not installed in bench/yardstick');
  if (!llamaPromise) {
    const mod = (await import(pathToFileURL(entry).href)) as NlcModule;
    // CPU only, prebuilt binaries only, and the thread count each context asks for exactly (maxThreads 0)
    llamaPromise = mod.getLlama({ gpu: false, build: 'never', skipDownload: true, maxThreads: 0, logLevel: 'error', progressLogs: false });
  }
  return llamaPromise;
}

/** Prefill and decode speed of the GGUF at `ggufPath` on `threads` CPU threads (greedy, arbitrary token ids). */
export async function llamaCppBench(ggufPath: string, opts: LlamaCppBenchOptions): Promise<LlamaCppBenchResult> {
  const { promptTokens, decodeTokens, threads } = opts;
  const ll = await llama();
  const model = await ll.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
  try {
    const context = await model.createContext({ contextSize: promptTokens + decodeTokens + 8, batchSize: Math.min(promptTokens, 512), threads, sequences: 1 });
    try {
      const seq = context.getSequence();
      // ordinary ids away from the special tokens at the start of the vocabulary
      const prompt = Array.from({ length: promptTokens }, (_, i) => 100 + ((i * 7919) % 20000));
      // warm-up: touch every weight page (the model is mmapped) and start the threads
      await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, Math.min(64, promptTokens)));
      await seq.clearHistory();
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(prompt);
      const prefillMs = performance.now() - t0;
      // each step of the generator evaluates one token (the previous output) and samples the next
      let steps = 0;
      const t1 = performance.now();
      for await (const token of seq.evaluate([101], { temperature: 0 })) {
        void token;
        if (++steps >= decodeTokens) break;
      }
      const decodeMs = performance.now() - t1;
      return { prefillTokPerS: (promptTokens / prefillMs) * 1000, decodeTokPerS: (steps / decodeMs) * 1000 };
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

interface YardstickRow { dtype: 'F32' | 'F16'; promptTokens: number; threads: number; prefillTokPerS: number; decodeTokPerS: number; decode1ThreadTokPerS: number }

export interface YardstickBenchResult {
  engine: string;
  model: string;
  rows: YardstickRow[];
}

const PROMPTS = [512, 2048];
const DECODE_TOKENS = 32;

export async function runBench(): Promise<YardstickBenchResult | { skipped: string }> {
  if (!(await ensureYardstick())) return { skipped: 'node-llama-cpp could not be installed' };
  const cfg = smolConfig();
  const tokenizer = Tokenizer.fromDir(join(sharedData, 'tokenizers', 'SmolLM2-135M-Instruct'));
  const weights = randomWeights(cfg, 1, 0.05);
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-yardstick-'));
  const rows: YardstickRow[] = [];
  try {
    for (const dtype of ['F32', 'F16'] as const) {
      const file = join(dir, `smollm2-135m-random-${dtype}.gguf`);
      writeGguf(file, cfg, weights, tokenizer, { dtype, name: 'SmolLM2-135M shapes, random weights' });
      for (const promptTokens of PROMPTS) {
        const two = await llamaCppBench(file, { promptTokens, decodeTokens: DECODE_TOKENS, threads: 2 });
        const one = await llamaCppBench(file, { promptTokens, decodeTokens: DECODE_TOKENS, threads: 1 });
        rows.push({ dtype, promptTokens, threads: 2, prefillTokPerS: two.prefillTokPerS, decodeTokPerS: two.decodeTokPerS, decode1ThreadTokPerS: one.decodeTokPerS });
        process.stderr.write(`  ${dtype} prompt ${promptTokens}: prefill ${two.prefillTokPerS.toFixed(0)} tok/s, decode ${two.decodeTokPerS.toFixed(1)} tok/s (1 thread ${one.decodeTokPerS.toFixed(1)})\n`);
      }
      rmSync(file, { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(formatTable(
    `llama.cpp (node-llama-cpp 3.22.1, CPU), SmolLM2-135M shapes, random weights; decode ${DECODE_TOKENS} tokens after the prompt`,
    ['dtype', 'prompt', 'prefill tok/s (2 thr)', 'decode tok/s (2 thr)', 'decode tok/s (1 thr)'],
    rows.map((r) => [r.dtype, r.promptTokens, r.prefillTokPerS, r.decodeTokPerS, r.decode1ThreadTokPerS]),
  ));
  return { engine: 'llama.cpp via node-llama-cpp 3.22.1 (prebuilt linux-x64, CPU)', model: 'SmolLM2-135M shapes, random weights (seed 1, scale 0.05)', rows };
}
