import type { ResultRow } from './results.js';
import { pressLabel, type Mode } from './settings.js';
import { bootstrapCi, pairedDifference } from './stats.js';

/** Mean figures of one (method, budget, mode) group, optionally within one task. */
export interface SummaryRow {
  press: string;
  budget: number;
  mode: Mode;
  task: string | null;
  /** mean score, 0..100 */
  score: number;
  /** 95% bootstrap interval of the mean score over the cases */
  ci95: [number, number];
  n: number;
  oracle_hit: number | null;
  attention_recall: number | null;
  top1: number | null;
  kl: number | null;
}

function meanOf(values: (number | null)[]): number | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/**
 * Group rows by method (with options), budget and mode, and by task when `byTask`. The score is the mean
 * over cases, each task weighted by its number of cases (the per-task means are there for a macro view).
 */
export function summarize(rows: readonly ResultRow[], byTask = false): SummaryRow[] {
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) {
    const label = pressLabel({ name: r.press, options: r.options });
    const key = JSON.stringify([label, r.budget, r.mode, byTask ? r.task : null]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(r);
  }
  const out: SummaryRow[] = [];
  for (const [key, g] of groups) {
    const [press, budget, mode, task] = JSON.parse(key) as [string, number, Mode, string | null];
    out.push({
      press,
      budget,
      mode,
      task,
      score: g.reduce((a, r) => a + r.score, 0) / g.length,
      ci95: bootstrapCi(g.map((r) => r.score))!,
      n: g.length,
      oracle_hit: meanOf(g.map((r) => r.fidelity.oracle_hit)),
      attention_recall: meanOf(g.map((r) => r.fidelity.attention_recall)),
      top1: meanOf(g.map((r) => r.fidelity.top1)),
      kl: meanOf(g.map((r) => r.fidelity.kl)),
    });
  }
  return out.sort(
    (a, b) =>
      a.mode.localeCompare(b.mode) || (a.task ?? '').localeCompare(b.task ?? '') || a.press.localeCompare(b.press) || a.budget - b.budget,
  );
}

/** The --json output: {"rows": [{press, budget, mode, score, n, ci95: [low, high]}]}. */
export function jsonSummary(rows: readonly ResultRow[]): {
  rows: { press: string; budget: number; mode: string; score: number; n: number; ci95: [number, number] }[];
} {
  return {
    rows: summarize(rows).map((s) => ({
      press: s.press,
      budget: s.budget,
      mode: s.mode,
      score: round(s.score, 2),
      n: s.n,
      ci95: [round(s.ci95[0], 2), round(s.ci95[1], 2)],
    })),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const fmt = (x: number | null, digits = 1) => (x === null ? '-' : x.toFixed(digits));
const ciText = (ci: [number, number] | null) => (ci === null ? '-' : `[${ci[0].toFixed(1)}, ${ci[1].toFixed(1)}]`);

/**
 * The summary's header and rows: method, budget, mode, cases, score and its 95% interval, a column per task when
 * there are several, then the fidelity means. The text table and the report's HTML table both show these.
 */
export function summaryRows(rows: readonly ResultRow[]): { header: string[]; body: string[][] } {
  const overall = summarize(rows);
  const perTask = summarize(rows, true);
  const tasks = [...new Set(rows.map((r) => r.task))].sort();
  const header = ['method', 'budget', 'mode', 'cases', 'score', '95% CI', ...(tasks.length > 1 ? tasks : [])];
  header.push('oracle hit %', 'attention recall %', 'top-1 %', 'KL');
  const body = overall.map((s) => {
    const taskCells =
      tasks.length > 1
        ? tasks.map((t) =>
            fmt(perTask.find((p) => p.task === t && p.press === s.press && p.budget === s.budget && p.mode === s.mode)?.score ?? null),
          )
        : [];
    const fidelity = [fmt(s.oracle_hit), fmt(s.attention_recall), fmt(s.top1), fmt(s.kl, 3)];
    return [s.press, String(s.budget), s.mode, String(s.n), fmt(s.score), ciText(s.ci95), ...taskCells, ...fidelity];
  });
  return { header, body };
}

/** Short column names of the plain-text table. */
const TEXT_HEADER: Record<string, string> = { cases: 'n', 'oracle hit %': 'hit%', 'attention recall %': 'recall%', 'top-1 %': 'top1%' };

/** A plain-text table; one line per method and budget, one block per mode, a column per task when several. */
export function formatTable(rows: readonly ResultRow[]): string {
  const { header: names, body } = summaryRows(rows);
  const header = names.map((h) => TEXT_HEADER[h] ?? h);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** The same table in Markdown (for the README). */
export function formatMarkdownTable(rows: readonly ResultRow[]): string {
  const overall = summarize(rows);
  const head = '| method | budget | mode | cases | score | 95% CI | oracle hit % | attention recall % | top-1 % | KL |';
  const sep = '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|';
  const lines = overall.map(
    (s) =>
      `| ${s.press} | ${s.budget} | ${s.mode} | ${s.n} | ${fmt(s.score)} | ${ciText(s.ci95)} | ${fmt(s.oracle_hit)} | ${fmt(s.attention_recall)} | ${fmt(s.top1)} | ${fmt(s.kl, 3)} |`,
  );
  return [head, sep, ...lines].join('\n');
}

export type PivotMeasure = 'score' | 'oracle_hit' | 'attention_recall';

/**
 * Rows whose method labels leave out a trained-file option (`soft=`, `modules=`), for tables about one such
 * file: the label names the file so that rows of two files never mix, but a table of one reads better without
 * a path in every row.
 */
export function withoutFileOptions(rows: readonly ResultRow[]): ResultRow[] {
  return rows.map((r) => {
    const options = Object.fromEntries(Object.entries(r.options).filter(([k]) => k !== 'soft' && k !== 'modules'));
    return { ...r, options };
  });
}

/**
 * A Markdown table with one line per method and mode and one column per budget, holding the mean of
 * `measure`; "cases" is the number of cases behind each cell (the largest, when budgets differ).
 */
export function formatMarkdownPivot(rows: readonly ResultRow[], measure: PivotMeasure = 'score', withCi = false): string {
  const overall = summarize(rows);
  const budgets = [...new Set(overall.map((s) => s.budget))].sort((a, b) => a - b);
  const keys = [...new Set(overall.map((s) => JSON.stringify([s.press, s.mode])))];
  const head = `| method | mode | cases | ${budgets.map((b) => `B=${b}`).join(' | ')} |`;
  const sep = `|---|---|---:|${budgets.map(() => '---:').join('|')}|`;
  const lines = keys.map((k) => {
    const [press, mode] = JSON.parse(k) as [string, Mode];
    const cells = budgets.map((b) => overall.find((s) => s.press === press && s.mode === mode && s.budget === b));
    const n = Math.max(...cells.map((c) => c?.n ?? 0));
    const cell = (c: SummaryRow) => (measure === 'score' ? `${fmt(c.score)}${withCi ? ` (${ciText(c.ci95)})` : ''}` : fmt(c[measure]));
    return `| ${press} | ${mode} | ${n} | ${cells.map((c) => (c ? cell(c) : '-')).join(' | ')} |`;
  });
  return [head, sep, ...lines].join('\n');
}

/** Which benchmark family a row belongs to, for the focus table. */
function family(dataset: string): 'needle' | 'RULER' | 'LongBench' | 'other' {
  if (dataset === 'niah') return 'needle';
  if (dataset.startsWith('ruler:')) return 'RULER';
  if (dataset.startsWith('longbench:')) return 'LongBench';
  return 'other';
}

/**
 * A Markdown table comparing a few methods at a few budgets: per mode, the mean score of each benchmark
 * family (needle, RULER, LongBench) and the oracle hit rate, one column per budget.
 */
export function formatMarkdownFocus(rows: readonly ResultRow[], presses: readonly string[], budgets: readonly number[]): string {
  const picked = rows.filter(
    (r) => presses.includes(pressLabel({ name: r.press, options: r.options })) && (r.press === 'full' || budgets.includes(r.budget)),
  );
  const families = (['needle', 'RULER', 'LongBench', 'other'] as const).filter((f) => picked.some((r) => family(r.dataset) === f));
  const cols: { title: string; cell: (g: ResultRow[]) => number | null }[] = [];
  for (const f of families) cols.push({ title: f, cell: (g) => meanOf(g.filter((r) => family(r.dataset) === f).map((r) => r.score)) });
  cols.push({ title: 'oracle hit %', cell: (g) => meanOf(g.map((r) => r.fidelity.oracle_hit)) });
  const head = `| method | mode | ${cols.flatMap((c) => budgets.map((b) => `${c.title} B=${b}`)).join(' | ')} |`;
  const sep = `|---|---|${cols.flatMap(() => budgets.map(() => '---:')).join('|')}|`;
  const lines: string[] = [];
  for (const mode of [...new Set(picked.map((r) => r.mode))].sort()) {
    for (const press of presses) {
      const mine = picked.filter((r) => r.mode === mode && pressLabel({ name: r.press, options: r.options }) === press);
      if (mine.length === 0) continue;
      // the full cache does not depend on the budget: every budget's rows are the same cases
      const at = (b: number) => (press === 'full' ? mine : mine.filter((r) => r.budget === b));
      lines.push(`| ${press} | ${mode} | ${cols.flatMap((c) => budgets.map((b) => fmt(c.cell(at(b))))).join(' | ')} |`);
    }
  }
  return [head, sep, ...lines].join('\n');
}

/**
 * Paired comparison against a baseline: per mode and budget, the mean score difference of each method minus
 * `baseline` over the cases both ran (matched by task and case), with its 95% bootstrap interval.
 */
export function formatMarkdownPaired(rows: readonly ResultRow[], baseline: string, presses: readonly string[]): string {
  const label = (r: ResultRow) => pressLabel({ name: r.press, options: r.options });
  const scores = (press: string, mode: Mode, budget: number) =>
    new Map(
      rows.filter((r) => label(r) === press && r.mode === mode && r.budget === budget).map((r) => [`${r.task}\u0000${r.case}`, r.score]),
    );
  const budgets = [...new Set(rows.filter((r) => label(r) === baseline).map((r) => r.budget))].sort((a, b) => a - b);
  const modes = [...new Set(rows.map((r) => r.mode))].sort();
  const head = `| method - ${baseline} | mode | ${budgets.map((b) => `B=${b}`).join(' | ')} |`;
  const sep = `|---|---|${budgets.map(() => '---:').join('|')}|`;
  const lines: string[] = [];
  for (const mode of modes) {
    for (const press of presses) {
      const cells = budgets.map((b) => {
        const d = pairedDifference(scores(press, mode, b), scores(baseline, mode, b));
        return d ? `${d.mean >= 0 ? '+' : ''}${d.mean.toFixed(1)} ${ciText(d.ci95)} (n=${d.n})` : '-';
      });
      if (cells.some((c) => c !== '-')) lines.push(`| ${press} | ${mode} | ${cells.join(' | ')} |`);
    }
  }
  return [head, sep, ...lines].join('\n');
}
