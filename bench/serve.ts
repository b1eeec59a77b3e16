/**
 * `kvevict serve` under load: a server process on a random-weight SmolLM2-135M (bf16, its real tokenizer), and
 * 1, 4 or 8 concurrent streaming clients here. Aggregate generated tokens/s, latency and time to first token
 * percentiles, with and without eviction, batched decoding (all streams in one pass over the weights) against
 * one at a time (--max-batch 1, the same server otherwise); and time to first token with and without a reused
 * compressed context. Run it alone on an idle machine: `node dist/bench/run.js serve`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernels } from '../src/kernels/index.js';
import type { MatrixWeights } from '../src/kernels/types.js';
import { LinearKernel } from '../src/model/linear.js';
import { repoRoot } from '../src/paths.js';
import { Bf16Matrix } from '../src/quant/formats.js';
import { quantizeMatrix } from '../src/quant/quantize.js';
import { Rng } from '../src/util/rng.js';
import { smolRawConfig, writeRandomModelDir } from '../test/helpers/random-model.js';
import { formatTable } from './table.js';

const PROMPT_WORDS = 400; // about 512 tokens
const MAX_TOKENS = 48;
const REQUESTS_PER_CLIENT = 2;

interface Run {
  streams: number;
  eviction: string;
  batching: 'batched' | 'one at a time';
  requests: number;
  generatedTokens: number;
  seconds: number;
  tokPerS: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  ttftP50Ms: number;
  ttftP95Ms: number;
  /** generated tokens after the first over the time after it, per request (median): each stream's decode rate */
  streamDecodeTokPerS: number;
}

function startServer(dir: string, maxBatch: number): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      [join(repoRoot, 'bin', 'kvevict.js'), 'serve', '--model', dir, '--port', '0', '--max-batch', String(maxBatch), '--max-queue', '64'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '',
      err = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /(http:\/\/\S+)\/v1/.exec(out);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err.slice(-2000)}`)));
  });
}

/** One streamed chat request: its latency, time to first token and generated tokens (from the usage chunk). */
async function streamChat(
  url: string,
  messages: object[],
  kv: object | undefined,
): Promise<{ ms: number; ttftMs: number; tokens: number; reused: boolean }> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'bench',
      messages,
      max_tokens: MAX_TOKENS,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      ...(kv ? { kv_compression: kv } : {}),
    }),
  });
  if (r.status !== 200) throw new Error(`status ${r.status}: ${await r.text()}`);
  let ttft = -1,
    tokens = 0,
    reused = false,
    buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    let at: number;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, at).replace(/^data: /, '');
      buf = buf.slice(at + 2);
      if (line === '[DONE]') continue;
      const o = JSON.parse(line) as {
        choices: { delta?: { content?: string } }[];
        usage?: { completion_tokens: number; kv_cache: { context_reused: boolean } };
      };
      if (ttft < 0 && o.choices[0]?.delta?.content) ttft = performance.now() - t0;
      if (o.usage) {
        tokens = o.usage.completion_tokens;
        reused = o.usage.kv_cache.context_reused;
      }
    }
  }
  const ms = performance.now() - t0;
  return { ms, ttftMs: ttft < 0 ? ms : ttft, tokens, reused };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

function percentiles<N extends string>(name: N, xs: number[]): Record<`${N}P50Ms` | `${N}P95Ms`, number> {
  return { [`${name}P50Ms`]: percentile(xs, 0.5), [`${name}P95Ms`]: percentile(xs, 0.95) } as Record<`${N}P50Ms` | `${N}P95Ms`, number>;
}

function words(rng: Rng, n: number): string {
  const pool = [
    'harbour',
    'ferry',
    'market',
    'lighthouse',
    'river',
    'morning',
    'quiet',
    'stone',
    'bridge',
    'garden',
    'letter',
    'window',
    'seven',
    'north',
    'winter',
  ];
  return Array.from({ length: n }, () => pool[rng.int(pool.length)]).join(' ');
}

async function load(
  url: string,
  streams: number,
  kv: object | undefined,
  seed: number,
): Promise<Omit<Run, 'streams' | 'eviction' | 'batching'>> {
  const rng = new Rng(seed);
  const prompts = Array.from({ length: streams * REQUESTS_PER_CLIENT }, () => words(rng, PROMPT_WORDS));
  const results: Awaited<ReturnType<typeof streamChat>>[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: streams }, async (_, c) => {
      for (let i = 0; i < REQUESTS_PER_CLIENT; i++)
        results.push(await streamChat(url, [{ role: 'user', content: `${prompts[c * REQUESTS_PER_CLIENT + i]}\n\nSummarize.` }], kv));
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const generatedTokens = results.reduce((a, r) => a + r.tokens, 0);
  return {
    requests: results.length,
    generatedTokens,
    seconds,
    tokPerS: generatedTokens / seconds,
    ...percentiles(
      'latency',
      results.map((r) => r.ms),
    ),
    ...percentiles(
      'ttft',
      results.map((r) => r.ttftMs),
    ),
    streamDecodeTokPerS: percentile(
      results.map((r) => ((r.tokens - 1) / (r.ms - r.ttftMs)) * 1000),
      0.5,
    ),
  };
}

/** Time to first token of a question on a 2,048-word context: first asked (compressed), then asked again (reused). */
async function reuse(url: string): Promise<{ freshMs: number; reusedMs: number; reusedFlag: boolean }[]> {
  const rng = new Rng(99);
  const out: { freshMs: number; reusedMs: number; reusedFlag: boolean }[] = [];
  const kv = { press: 'snapkv', budget: 128, mode: 'query-agnostic' };
  for (let i = 0; i < 3; i++) {
    const doc = words(rng, 1600);
    const chat = (q: string) => [
      { role: 'user', content: doc },
      { role: 'assistant', content: 'Read.' },
      { role: 'user', content: q },
    ];
    const a = await streamChat(url, chat('What is the first word?'), kv);
    const b = await streamChat(url, chat('What is the last word?'), kv);
    out.push({ freshMs: a.ttftMs, reusedMs: b.ttftMs, reusedFlag: b.reused });
  }
  return out;
}

interface ProductRow {
  format: string;
  rows: number;
  batchMs: number;
  oneByOneMs: number;
  matrixMs: number;
}

/**
 * The decode step's products for `rows` sequences at once, on a 16,384 x 2,048 matrix (a 1B model's MLP; larger
 * than the L3 cache in float32, bfloat16 and Q8_0, so each pass over it comes from memory), each
 * way: sgemvBatch (the weights read once for all rows), one sgemv per row, and the prefill's path (widened,
 * then sgemm). Best of 5.
 */
function products(): ProductRow[] {
  const k = kernels();
  const n = 16384,
    kk = 2048;
  const rng = new Rng(5);
  const w = Float32Array.from({ length: n * kk }, () => (rng.next() * 2 - 1) * 0.05);
  const bits = Uint16Array.from(new Uint32Array(w.buffer), (u) => u >>> 16);
  const formats: [string, MatrixWeights][] = [
    ['f32', w],
    ['bf16', new Bf16Matrix(bits, n, kk)],
    ['q8_0', quantizeMatrix('q8_0', w, n, kk)],
    ['q4_k', quantizeMatrix('q4_k', w, n, kk)],
  ];
  const best = (f: () => void) => {
    let b = Infinity;
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      for (let j = 0; j < 2; j++) f();
      b = Math.min(b, (performance.now() - t) / 2);
    }
    return b;
  };
  const out: ProductRow[] = [];
  const linear = new LinearKernel();
  for (const [format, m] of formats)
    for (const rows of [1, 2, 4, 8]) {
      const x = Float32Array.from({ length: rows * kk }, () => rng.next() - 0.5);
      const y = new Float32Array(rows * n);
      out.push({
        format,
        rows,
        batchMs: best(() => k.sgemvBatch(rows, n, kk, m, x, y)),
        oneByOneMs: best(() => {
          for (let r = 0; r < rows; r++) k.sgemv(n, kk, m, x.subarray(r * kk), y.subarray(r * n));
        }),
        matrixMs: best(() => linear.run(k, rows, n, kk, x, m, y, false)),
      });
    }
  return out;
}

export async function runBench(): Promise<object> {
  const productRows = products();
  process.stdout.write(
    formatTable(
      'decode products for a batch of sequences, 16,384 x 2,048 (a 1B MLP), native kernels, 2 threads, best of 5',
      ['format', 'rows', 'sgemvBatch ms', 'row by row ms', 'widen + sgemm ms', 'batch gain'],
      productRows.map((r) => [r.format, r.rows, r.batchMs, r.oneByOneMs, r.matrixMs, r.oneByOneMs / r.batchMs]),
    ),
  );
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-serve-bench-'));
  try {
    writeRandomModelDir(dir, smolRawConfig(), { dtype: 'BF16' });
    const runs: Run[] = [];
    let reuseRows: Awaited<ReturnType<typeof reuse>> = [];
    for (const [batching, maxBatch] of [
      ['batched', 32],
      ['one at a time', 1],
    ] as const) {
      const { proc, url } = await startServer(dir, maxBatch);
      try {
        await streamChat(url, [{ role: 'user', content: 'warm up' }], undefined);
        for (const streams of [1, 4, 8])
          for (const [eviction, kv] of [
            ['full cache', undefined],
            ['snapkv@128', { press: 'snapkv', budget: 128, mode: 'query-aware' }],
          ] as const) {
            const r = { streams, eviction, batching, ...(await load(url, streams, kv, streams * 7)) };
            runs.push(r);
            process.stderr.write(
              `  ${batching}, ${streams} streams, ${eviction}: ${r.tokPerS.toFixed(1)} tok/s, TTFT p50 ${r.ttftP50Ms.toFixed(0)} ms\n`,
            );
          }
        if (batching === 'batched') reuseRows = await reuse(url);
      } finally {
        proc.kill();
      }
    }
    process.stdout.write(
      formatTable(
        `kvevict serve, random-weight SmolLM2-135M (bf16), prompts of about 512 tokens, ${MAX_TOKENS} tokens each, ${REQUESTS_PER_CLIENT} requests per client, streaming`,
        ['streams', 'eviction', 'decoding', 'tok/s', 'latency p50 ms', 'p95', 'TTFT p50 ms', 'p95', 'decode tok/s per stream'],
        runs.map((r) => [
          r.streams,
          r.eviction,
          r.batching,
          r.tokPerS,
          r.latencyP50Ms,
          r.latencyP95Ms,
          r.ttftP50Ms,
          r.ttftP95Ms,
          r.streamDecodeTokPerS,
        ]),
      ),
    );
    const gains = [1, 4, 8].flatMap((s) =>
      ['full cache', 'snapkv@128'].map((e) => {
        const b = runs.find((r) => r.streams === s && r.eviction === e && r.batching === 'batched')!;
        const o = runs.find((r) => r.streams === s && r.eviction === e && r.batching === 'one at a time')!;
        return { streams: s, eviction: e, gain: b.tokPerS / o.tokPerS };
      }),
    );
    process.stdout.write(
      formatTable(
        'batched decoding against one at a time (tokens/s ratio)',
        ['streams', 'eviction', 'gain'],
        gains.map((g) => [g.streams, g.eviction, g.gain]),
      ),
    );
    process.stdout.write(
      formatTable(
        'time to first token on a 2,048-word context (snapkv@128, query-agnostic): compressed on first use, then reused',
        ['context', 'fresh ms', 'reused ms', 'reused'],
        reuseRows.map((r, i) => [i + 1, r.freshMs, r.reusedMs, String(r.reusedFlag)]),
      ),
    );
    return { products: productRows, runs, gains, reuse: reuseRows, promptWords: PROMPT_WORDS, maxTokens: MAX_TOKENS };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
