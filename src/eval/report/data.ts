import { bootstrapCi, stratifiedBootstrapCi } from '../stats.js';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KvevictError } from '../../errors.js';
import { RESULTS_FILE, readRowsWithProblems, type ResultRow } from '../results.js';
import { KEPT_DIR, type KeptFile } from '../runner.js';
import { MODES, pressLabel, type Mode } from '../settings.js';

/** Everything the report shows, read from a results folder. */
export interface ReportData {
  dir: string;
  rows: ResultRow[];
  kept: KeptFile[];
  modes: Mode[];
  tasks: string[];
  models: string[];
}

export function loadReportData(dir: string): ReportData {
  if (!existsSync(join(dir, RESULTS_FILE))) throw new KvevictError(`${dir}: no ${RESULTS_FILE} here (run kvevict eval --out ${dir} first)`);
  const { rows, malformed } = readRowsWithProblems(dir);
  if (malformed.length > 0) {
    process.stderr.write(
      `kvevict: ${join(dir, RESULTS_FILE)}: skipped ${malformed.length} line(s) that are not result rows (line ${malformed.slice(0, 5).join(', ')}${malformed.length > 5 ? ', ...' : ''})\n`,
    );
  }
  if (rows.length === 0) throw new KvevictError(`${join(dir, RESULTS_FILE)}: no result rows`);
  const keptDir = join(dir, KEPT_DIR);
  const kept: KeptFile[] = existsSync(keptDir)
    ? readdirSync(keptDir)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => JSON.parse(readFileSync(join(keptDir, f), 'utf8')) as KeptFile)
    : [];
  const modes = MODES.filter((m) => rows.some((r) => r.mode === m));
  return { dir, rows, kept, modes, tasks: [...new Set(rows.map((r) => r.task))].sort(), models: [...new Set(rows.map((r) => r.model))] };
}

/** Method label of a row (name with options). */
export function labelOf(r: ResultRow): string {
  return pressLabel({ name: r.press, options: r.options });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function groupBy<T>(xs: readonly T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    let g = m.get(k);
    if (!g) m.set(k, (g = []));
    g.push(x);
  }
  return m;
}

export interface ScorePoint {
  method: string;
  budget: number;
  task: string;
  score: number;
  /** the 95% bootstrap interval of the score */
  lo: number;
  hi: number;
  n: number;
}

/** The label of the across-task panel. */
export const MEAN_OVER_TASKS = 'mean over tasks';

/** Mean score per method, budget and task, plus the mean over tasks (each task weighted equally). */
export function scorePoints(rows: readonly ResultRow[], mode: Mode): ScorePoint[] {
  const mine = rows.filter((r) => r.mode === mode);
  const out: ScorePoint[] = [];
  for (const [k, g] of groupBy(mine, (r) => JSON.stringify([labelOf(r), r.budget, r.task]))) {
    const [method, budget, task] = JSON.parse(k) as [string, number, string];
    const [lo, hi] = bootstrapCi(g.map((r) => r.score))!;
    out.push({ method, budget, task, score: mean(g.map((r) => r.score)), lo, hi, n: g.length });
  }
  const tasks = new Set(out.map((p) => p.task));
  if (tasks.size > 1) {
    for (const [k, g] of groupBy(out.slice(), (p) => JSON.stringify([p.method, p.budget]))) {
      const [method, budget] = JSON.parse(k) as [string, number];
      // only where every task has the point, so the mean compares like with like
      if (g.length !== tasks.size) continue;
      const scores = g.map((p) =>
        mine.filter((r) => labelOf(r) === method && r.budget === budget && r.task === p.task).map((r) => r.score),
      );
      const [lo, hi] = stratifiedBootstrapCi(scores)!;
      out.push({ method, budget, task: MEAN_OVER_TASKS, score: mean(g.map((p) => p.score)), lo, hi, n: g.reduce((a, p) => a + p.n, 0) });
    }
  }
  return out;
}

export interface HeatCell {
  method: string;
  budget: number;
  length: number;
  depth: number;
  score: number;
}

/** Needle scores per method, budget, haystack length and depth. */
export function needleCells(rows: readonly ResultRow[], mode: Mode): HeatCell[] {
  const mine = rows.filter(
    (r) => r.mode === mode && r.task === 'niah' && typeof r.meta.length === 'number' && typeof r.meta.depth === 'number',
  );
  const out: HeatCell[] = [];
  for (const [k, g] of groupBy(mine, (r) => JSON.stringify([labelOf(r), r.budget, r.meta.length, r.meta.depth]))) {
    const [method, budget, length, depth] = JSON.parse(k) as [string, number, number, number];
    out.push({ method, budget, length, depth, score: mean(g.map((r) => r.score)) });
  }
  return out;
}

export interface FidelityPoint {
  method: string;
  budget: number;
  measure: 'oracle hit rate' | 'attention recall';
  value: number;
}

/** Mean oracle hit rate and attention recall (%) per method and budget; the full cache is left out (100 by definition). */
export function fidelityPoints(rows: readonly ResultRow[], mode: Mode): FidelityPoint[] {
  const mine = rows.filter((r) => r.mode === mode && r.press !== 'full');
  const out: FidelityPoint[] = [];
  for (const [k, g] of groupBy(mine, (r) => JSON.stringify([labelOf(r), r.budget]))) {
    const [method, budget] = JSON.parse(k) as [string, number];
    const hit = g.map((r) => r.fidelity.oracle_hit).filter((x): x is number => x !== null);
    const rec = g.map((r) => r.fidelity.attention_recall).filter((x): x is number => x !== null);
    if (hit.length) out.push({ method, budget, measure: 'oracle hit rate', value: mean(hit) });
    if (rec.length) out.push({ method, budget, measure: 'attention recall', value: mean(rec) });
  }
  return out;
}

export interface KeptBin {
  setting: string;
  bin: number;
  start: number;
  end: number;
  share: number;
}

/** Share of (layer, head, position) kept per bin of prompt positions, per setting of one kept file. */
export function keptBins(kf: KeptFile, bins = 128): KeptBin[] {
  const L = kf.tokens.length;
  const nb = Math.max(1, Math.min(bins, L));
  const out: KeptBin[] = [];
  for (const s of sortedSettings(kf)) {
    const counts = new Float64Array(nb);
    for (const layer of s.kept) for (const head of layer) for (const p of head) if (p < L) counts[Math.floor((p * nb) / L)]++;
    const heads = s.kept.length * (s.kept[0]?.length ?? 0);
    for (let b = 0; b < nb; b++) {
      const start = Math.ceil((b * L) / nb);
      const end = Math.ceil(((b + 1) * L) / nb);
      const width = Math.max(1, end - start);
      out.push({
        setting: `${pressLabel({ name: s.press, options: s.options })} @${s.budget}`,
        bin: b,
        start,
        end: end - 1,
        share: counts[b] / (width * heads),
      });
    }
  }
  return out;
}

/** A kept file's settings by method (the full cache first, then by name) and budget. */
export function sortedSettings(kf: KeptFile): KeptFile['settings'] {
  const label = (s: KeptFile['settings'][number]) => pressLabel({ name: s.press, options: s.options });
  return kf.settings
    .slice()
    .sort((a, b) =>
      label(a) === label(b) ? a.budget - b.budget : label(a) === 'full' ? -1 : label(b) === 'full' ? 1 : label(a).localeCompare(label(b)),
    );
}
