/**
 * llama.cpp, through node-llama-cpp, as the speed yardstick: prefill and decode tokens/s of a GGUF model on
 * the CPU. node-llama-cpp lives in its own package (bench/yardstick/) so that it never enters kvevict's
 * dependencies or lockfile; ensureYardstick() installs it there on first use from the npm registry, with
 * the prebuilt linux-x64 binaries only (no CUDA/Vulkan downloads, no install scripts, no source builds).
 * bench/engine.ts uses it to compare the engine with llama.cpp on the same weights.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../src/paths.js';

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
    const why =
      r.error?.message ??
      `${r.stderr ?? ''}`
        .trim()
        .split('\n')
        .filter((l) => !/^npm warn/i.test(l))[0] ??
      `exit ${r.status}`;
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
  tokenize(text: string, specialTokens?: boolean): number[];
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
    const context = await model.createContext({
      contextSize: promptTokens + decodeTokens + 8,
      batchSize: Math.min(promptTokens, 512),
      threads,
      sequences: 1,
    });
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

/**
 * llama.cpp's own tokenization of `texts` with the GGUF at `ggufPath` (special tokens in the text parsed, no
 * BOS added), and its greedy continuation of `prompt` (token ids) for `steps` tokens.
 */
export async function llamaCppTokenizeAndGreedy(
  ggufPath: string,
  texts: readonly string[],
  prompt: readonly number[],
  steps: number,
): Promise<{ ids: number[][]; greedy: number[] }> {
  const ll = await llama();
  const model = await ll.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
  try {
    const ids = texts.map((t) => Array.from(model.tokenize(t, true)));
    const context = await model.createContext({
      contextSize: prompt.length + steps + 8,
      batchSize: Math.max(8, prompt.length),
      threads: 1,
      sequences: 1,
    });
    try {
      const greedy: number[] = [];
      for await (const token of context.getSequence().evaluate([...prompt], { temperature: 0 })) {
        greedy.push(token as number);
        if (greedy.length >= steps) break;
      }
      return { ids, greedy };
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}
