import { writeFileSync } from 'node:fs';
import { LlamaModel } from '../model/llama.js';
import { loadModelDir } from '../model/load.js';
import { ModelEngine } from '../eval/model-engine.js';
import { runEvalJob } from '../eval/setup.js';
import { makeGrid } from '../eval/settings.js';
import { bootstrapCi } from '../eval/stats.js';
import { RULER_TASK_NAMES } from '../eval/datasets/ruler/tasks.js';
import type { ResultRow } from '../eval/results.js';
import type { TextSink } from '../eval/progress.js';
import { heldOutHaystack } from '../eval/datasets/split.js';
import { windowedNll } from './perplexity.js';

/**
 * The reference model's held-out evaluation against its targets (the model card's figures), through the
 * same eval runner as every benchmark: the classic needle in held-out essays at every length and depth,
 * the RULER tasks that need no outside QA file, generated with RULER's own templates (which training never
 * sees: src/train/data/wordings.ts), the full cache against StreamingLLM keeping 10% of the prompt, and
 * held-out perplexity. Rows go to a results folder, so an interrupted evaluation resumes.
 */
export interface RefEvalOptions {
  needleLengths: number[];
  needleDepths: number[];
  rulerLengths: number[];
  /** RULER cases per task and length */
  rulerSamples: number;
  /** StreamingLLM's share of the prompt kept, in the context-matters comparison */
  streamingKeep: number;
  perplexityTokens: number;
  out: string;
  progress: TextSink;
  log: TextSink;
}

export const RULER_NO_QA = RULER_TASK_NAMES.filter((t) => !t.startsWith('qa_'));

export const DEFAULT_REF_EVAL: Omit<RefEvalOptions, 'out' | 'progress' | 'log'> = {
  needleLengths: [1024, 2048, 4096, 8192],
  needleDepths: [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
  rulerLengths: [4096, 8192],
  rulerSamples: 20,
  streamingKeep: 0.1,
  perplexityTokens: 16384,
};

export interface Cell {
  score: number;
  ci95: [number, number];
  n: number;
}

export interface RefEval {
  model: string;
  niah: Record<string, Cell & { byDepth: Record<string, number> }>;
  ruler: Record<string, Cell & { tasks: Record<string, Cell>; streaming: Cell | null }>;
  perplexity: { tokens: number; perToken: number; bitsPerByte: number };
  targets: { name: string; value: number; target: string; met: boolean }[];
  seconds: number;
}

function cell(rows: readonly ResultRow[]): Cell {
  const xs = rows.map((r) => r.score);
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return { score: mean, ci95: bootstrapCi(xs) ?? [mean, mean], n: xs.length };
}

export async function evaluateReference(dir: string, o: RefEvalOptions): Promise<RefEval> {
  const t0 = Date.now();
  const m = loadModelDir(dir);
  const lm = new LlamaModel(m.config, m.weights);
  const engine = new ModelEngine(lm, m.tokenizer, ModelEngine.nameOf(dir), { fingerprint: ModelEngine.fingerprintOf(dir) });
  const loaded = { engine, embedded: true };
  const max = m.config.maxPositions;
  const fit = (ls: number[]) => ls.filter((l) => l <= max);
  const needleLengths = fit(o.needleLengths),
    rulerLengths = fit(o.rulerLengths);
  const base = { outDir: o.out, modelDir: dir, seed: 0, fidelity: false, progress: o.progress, log: o.log };
  const full = makeGrid([{ name: 'full', options: {} }], [1], ['query-aware']);
  const rows: ResultRow[] = [];
  if (needleLengths.length) {
    const r = await runEvalJob({ ...base, datasets: ['niah'], grid: full, lengths: needleLengths, depths: o.needleDepths }, loaded);
    rows.push(...r.results.flatMap((x) => x.rows));
  }
  for (const len of rulerLengths) {
    const r = await runEvalJob(
      { ...base, datasets: RULER_NO_QA.map((t) => `ruler:${t}`), grid: full, lengths: [len], samples: o.rulerSamples },
      loaded,
    );
    rows.push(...r.results.flatMap((x) => x.rows));
    // StreamingLLM keeping a tenth of the prompt: what the context is worth (the first length only)
    if (len === rulerLengths[0]) {
      const keep = Math.max(8, Math.round(o.streamingKeep * len));
      const s = await runEvalJob(
        {
          ...base,
          datasets: RULER_NO_QA.map((t) => `ruler:${t}`),
          grid: makeGrid([{ name: 'streaming', options: {} }], [keep], ['query-aware']),
          lengths: [len],
          samples: o.rulerSamples,
        },
        loaded,
      );
      rows.push(...s.results.flatMap((x) => x.rows));
    }
  }
  const report: RefEval = {
    model: dir,
    niah: {},
    ruler: {},
    perplexity: perplexity(lm, m.tokenizer, o.perplexityTokens),
    targets: [],
    seconds: 0,
  };
  const needleRows = rows.filter((r) => r.dataset === 'niah');
  for (const len of needleLengths) {
    const mine = needleRows.filter((r) => Number(r.meta.length) === len);
    const byDepth: Record<string, number> = {};
    for (const d of o.needleDepths) {
      const at = mine.filter((r) => Number(r.meta.depth) === d);
      if (at.length) byDepth[d] = cell(at).score;
    }
    report.niah[len] = { ...cell(mine), byDepth };
  }
  for (const len of rulerLengths) {
    const mine = rows.filter((r) => r.dataset.startsWith('ruler:') && r.meta.length === len);
    const tasks: Record<string, Cell> = {};
    for (const t of RULER_NO_QA) tasks[t] = cell(mine.filter((r) => r.press === 'full' && r.task === `ruler:${t}`));
    const streaming = mine.filter((r) => r.press === 'streaming');
    report.ruler[len] = { ...cell(mine.filter((r) => r.press === 'full')), tasks, streaming: streaming.length ? cell(streaming) : null };
  }
  const t = (name: string, value: number, target: string, met: boolean) => report.targets.push({ name, value, target, met });
  for (const len of needleLengths) {
    const worst = Math.min(...Object.values(report.niah[len].byDepth));
    t(`needle ${len}: lowest depth`, worst, '>= 98', worst >= 98);
  }
  const r4 = report.ruler[4096],
    r8 = report.ruler[8192];
  if (r4) {
    t('RULER 4K: mean of 11 tasks', r4.score, '>= 80', r4.score >= 80);
    const low = Math.min(...Object.values(r4.tasks).map((c) => c.score));
    t('RULER 4K: lowest task', low, '>= 50', low >= 50);
    if (r4.streaming)
      t('RULER 4K: full minus StreamingLLM 10%', r4.score - r4.streaming.score, '>= 30', r4.score - r4.streaming.score >= 30);
  }
  if (r8) t('RULER 8K: mean of 11 tasks', r8.score, '>= 65', r8.score >= 65);
  report.seconds = (Date.now() - t0) / 1000;
  return report;
}

/** Held-out essay perplexity per token of the model's vocabulary, and as bits per byte (comparable across vocabularies). */
function perplexity(lm: LlamaModel, tok: { encode(t: string): number[] }, maxTokens: number): RefEval['perplexity'] {
  const text = heldOutHaystack();
  const W = Math.min(1024, lm.config.maxPositions - 1);
  const ids = tok.encode(text.slice(0, maxTokens * 8));
  let bytes = 0;
  const decode = (tok as { decode?: (ids: number[]) => string }).decode;
  const { nll, count } = windowedNll(lm, ids, W, maxTokens, (chunk) => {
    bytes += Buffer.byteLength(decode?.call(tok, Array.from(chunk.subarray(1))) ?? '', 'utf8');
  });
  return { tokens: count, perToken: Math.exp(nll / Math.max(1, count)), bitsPerByte: bytes > 0 ? nll / Math.LN2 / bytes : NaN };
}

/** Markdown tables of a reference evaluation, for the model card. */
export function refEvalTables(e: RefEval): string {
  const f = (c: Cell) => `${c.score.toFixed(1)} [${c.ci95[0].toFixed(1)}, ${c.ci95[1].toFixed(1)}]`;
  const out: string[] = [];
  const lengths = Object.keys(e.niah);
  if (lengths.length) {
    const depths = Object.keys(e.niah[lengths[0]].byDepth);
    out.push(`| needle: depth \\ tokens | ${lengths.join(' | ')} |`, `|---|${lengths.map(() => '---:').join('|')}|`);
    for (const d of depths) out.push(`| ${d}% | ${lengths.map((l) => (e.niah[l].byDepth[d] ?? NaN).toFixed(0)).join(' | ')} |`);
    out.push(`| all | ${lengths.map((l) => f(e.niah[l])).join(' | ')} |`, '');
  }
  for (const [len, r] of Object.entries(e.ruler)) {
    out.push(`| RULER ${len} task | score (full cache) | cases |`, '|---|---:|---:|');
    for (const [t, c] of Object.entries(r.tasks)) out.push(`| ${t} | ${f(c)} | ${c.n} |`);
    out.push(`| **mean** | **${f(r)}** | ${r.n} |`);
    if (r.streaming) out.push(`| StreamingLLM, 10% kept | ${f(r.streaming)} | ${r.streaming.n} |`);
    out.push('');
  }
  out.push(
    `Held-out essay perplexity: ${e.perplexity.perToken.toFixed(2)} per token, ${e.perplexity.bitsPerByte.toFixed(3)} bits per byte (${e.perplexity.tokens} tokens).`,
    '',
  );
  out.push('| target | measured | wanted | met |', '|---|---:|---|---|');
  for (const t of e.targets) out.push(`| ${t.name} | ${t.value.toFixed(1)} | ${t.target} | ${t.met ? 'yes' : 'no'} |`);
  return out.join('\n') + '\n';
}

/** Write DIR/heldout-eval.json and print the tables. */
export function writeRefEval(file: string, e: RefEval): void {
  writeFileSync(file, JSON.stringify(e, null, 1) + '\n');
}
