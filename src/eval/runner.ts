import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KvevictError } from '../errors.js';
import type { EvalCase, LoadedDataset } from './case.js';
import type { CompressedRun, EvalEngine, FullRun } from './engine.js';
import { attentionMass, attentionRecall, oracleHitRate, outputAgreement, type AttentionMass, type FidelityTrace } from './fidelity.js';
import { scorePrediction } from './metrics/index.js';
import { Progress, type TextSink } from './progress.js';
import { preparePrompt, tokenTexts, type PreparedPrompt } from './prompt.js';
import { RowWriter, checkRunInfo, readRows, type FidelityFigures, type ResultRow } from './results.js';
import { canonicalOptions, pressLabel, rowKey, type Mode, type Setting } from './settings.js';

export interface RunGridOptions {
  engine: EvalEngine;
  dataset: LoadedDataset;
  grid: Setting[];
  outDir: string;
  /** progress bar (stderr) */
  progress: TextSink;
  /** problems: skipped dataset lines, failed cases (stderr) */
  log: TextSink;
  /** measure fidelity against the full cache (default true) */
  fidelity?: boolean;
  /** save kept positions of one case per task for the report (default true) */
  saveKept?: boolean;
  /** clock for the progress bar */
  now?: () => number;
}

export interface RunGridResult {
  /** rows of this dataset and grid, finished before or now */
  rows: ResultRow[];
  computed: number;
  skipped: number;
  failed: number;
}

/** The keep plan of one setting for the report's prompt view. */
export interface KeptRecord {
  press: string;
  options: Record<string, string | number | boolean>;
  budget: number;
  /** [layer][kvHead] kept positions */
  kept: number[][][];
}

/** OUT/kept/<file>.json: one case's prompt tokens and each setting's kept positions. */
export interface KeptFile {
  task: string;
  case: string;
  mode: Mode;
  /** the compressible tokens' text, one string per token */
  tokens: string[];
  layers: number;
  kvHeads: number;
  settings: KeptRecord[];
}

export const KEPT_DIR = 'kept';

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/**
 * The case of each task whose kept positions the report shows: for the needle, the longest haystack with
 * the needle nearest the middle (where evictions show); otherwise the task's first case.
 */
export function keptCaseIds(cases: readonly EvalCase[]): Set<string> {
  const best = new Map<string, EvalCase>();
  const rank = (c: EvalCase) => {
    const depth = typeof c.meta.depth === 'number' ? c.meta.depth : null;
    const length = typeof c.meta.length === 'number' ? c.meta.length : 0;
    return depth === null ? 0 : -Math.abs(depth - 50) * 1e9 + length;
  };
  for (const c of cases) {
    const have = best.get(c.task);
    if (!have || rank(c) > rank(have)) best.set(c.task, c);
  }
  return new Set([...best.values()].map((c) => c.id));
}

/** A trace cut to the first `length` prompt positions (the compressible part in query-agnostic mode). */
export function restrictTrace(t: FidelityTrace, length: number): FidelityTrace {
  if (length >= t.length) return t;
  return { ...t, length, keys: t.keys.map((heads) => heads.map((k) => k.subarray(0, length * t.headDim))) };
}

const pct = (x: number) => (Number.isFinite(x) ? 100 * x : null);

function fidelityOf(mass: AttentionMass | null, full: FullRun | null, run: CompressedRun): FidelityFigures {
  const out: FidelityFigures = { oracle_hit: null, attention_recall: null, top1: null, kl: null };
  if (mass) {
    out.oracle_hit = pct(oracleHitRate(mass, run.kept));
    out.attention_recall = pct(attentionRecall(mass, run.kept));
  }
  if (full && run.forcedLogits) {
    const a = outputAgreement(full.logits, run.forcedLogits);
    out.top1 = pct(a.top1);
    out.kl = Number.isFinite(a.kl) ? a.kl : null;
  }
  return out;
}

/**
 * Run the grid of settings x cases: rows already in OUT/results.jsonl are skipped, every finished row
 * is appended at once (so an interrupted run resumes), a progress bar with the time left goes to
 * `progress`. The full-cache run of a case is shared by every setting of that case. A case that fails
 * with a user error (e.g. a question longer than the context) is reported in one line and skipped.
 */
export async function runGrid(o: RunGridOptions): Promise<RunGridResult> {
  const { engine, dataset, grid, outDir } = o;
  if (dataset.cases.length === 0) {
    const why = dataset.problems.length ? `; ${dataset.problems.length} line(s) skipped, the first: ${dataset.problems[0]}` : '';
    throw new KvevictError(`${dataset.name}: no usable cases${why}`);
  }
  if (grid.length === 0) throw new KvevictError(`empty grid: ${dataset.cases.length} cases x 0 settings`);
  for (const s of grid) {
    if (s.press.name !== 'full') engine.checkSetting(s.press, s.budget);
    else if (Object.keys(s.press.options).length > 0)
      throw new KvevictError(`--press full takes no options (got ${Object.keys(s.press.options).join(', ')})`);
  }
  checkRunInfo(outDir, { model: engine.model, fingerprint: engine.fingerprint });
  for (const p of dataset.problems) o.log.write(`kvevict: ${p} (skipped)\n`);
  // the lock first, so that the rows read are the ones no other process is still adding to
  const writer = new RowWriter(outDir, (l) => o.log.write(l));
  try {
    return await runCases(o, writer, readRows(outDir));
  } finally {
    writer.close();
  }
}

async function runCases(o: RunGridOptions, writer: RowWriter, existing: ResultRow[]): Promise<RunGridResult> {
  const { engine, dataset, grid, outDir } = o;
  const done = new Map(existing.map((r) => [r.key, r]));
  const progress = new Progress(dataset.cases.length * grid.length, o.progress, o.now);
  const fidelity = o.fidelity ?? true;
  const keptIds = o.saveKept === false ? new Set<string>() : keptCaseIds(dataset.cases);
  const rows: ResultRow[] = [];
  let computed = 0;
  let skipped = 0;
  let failed = 0;

  for (const c of dataset.cases) {
    const keyOf = (s: Setting) => rowKey(c, s.press, s.budget, s.mode, engine.fingerprint ?? engine.model);
    const todo = grid.filter((s) => !done.has(keyOf(s)));
    for (const s of grid) {
      const r = done.get(keyOf(s));
      if (r) rows.push(r);
    }
    skipped += grid.length - todo.length;
    progress.skip(grid.length - todo.length);
    if (todo.length === 0) continue;
    const saveKept = keptIds.has(c.id);

    let prompt: PreparedPrompt;
    try {
      prompt = preparePrompt(c, engine.tokenizer, engine.maxContext);
    } catch (e) {
      if (!(e instanceof KvevictError)) throw e;
      o.log.write(`kvevict: case ${c.id}: ${e.message} (skipped)\n`);
      failed += todo.length;
      progress.skip(todo.length);
      continue;
    }
    const session = engine.open(prompt, c, todo);
    try {
      const needFull = fidelity || todo.some((s) => s.press.name === 'full');
      let full: FullRun | null = null;
      const masses = new Map<Mode, AttentionMass | null>();
      const massFor = (mode: Mode): AttentionMass | null => {
        if (!fidelity || !full) return null;
        if (!masses.has(mode)) masses.set(mode, attentionMass(restrictTrace(full.trace, compressibleTokens(prompt, mode))));
        return masses.get(mode)!;
      };
      for (const s of todo) {
        const t0 = (o.now ?? (() => performance.now()))();
        try {
          if (needFull && !full) full = await session.full();
          const row =
            s.press.name === 'full'
              ? fullRow(engine, dataset, c, s, prompt, full!)
              : compressedRow(
                  engine,
                  dataset,
                  c,
                  s,
                  prompt,
                  full,
                  massFor(s.mode),
                  await session.compressed(s.press, s.budget, s.mode, full),
                  saveKept,
                  outDir,
                );
          writer.append(row);
          rows.push(row);
          computed++;
        } catch (e) {
          if (!(e instanceof KvevictError)) throw e;
          o.log.write(`kvevict: case ${c.id}, ${pressLabel(s.press)} at budget ${s.budget} (${s.mode}): ${e.message} (skipped)\n`);
          failed++;
        }
        progress.tick((o.now ?? (() => performance.now()))() - t0, `${c.id} ${pressLabel(s.press)}@${s.budget}`);
      }
    } finally {
      session.close();
    }
  }
  return { rows, computed, skipped, failed };
}

function compressibleTokens(p: PreparedPrompt, mode: Mode): number {
  return mode === 'query-aware' ? p.contextTokens.length + p.questionTokens.length : p.contextTokens.length;
}

function baseRow(
  engine: EvalEngine,
  ds: LoadedDataset,
  c: EvalCase,
  s: Setting,
  p: PreparedPrompt,
  prediction: string,
): Omit<ResultRow, 'fidelity' | 'cache_bytes' | 'full_cache_bytes' | 'timings'> {
  return {
    key: rowKey(c, s.press, s.budget, s.mode, engine.fingerprint ?? engine.model),
    model: engine.model,
    dataset: ds.name,
    task: c.task,
    case: c.id,
    press: s.press.name,
    options: canonicalOptions(s.press.options),
    budget: s.budget,
    mode: s.mode,
    prompt_tokens: p.contextTokens.length + p.questionTokens.length,
    compressible_tokens: compressibleTokens(p, s.mode),
    truncated_tokens: p.truncatedTokens,
    prediction,
    answers: c.answers,
    metric: c.scoring.metric,
    score: scorePrediction(prediction, c.answers, c.scoring),
    meta: c.meta,
  };
}

function fullRow(engine: EvalEngine, ds: LoadedDataset, c: EvalCase, s: Setting, p: PreparedPrompt, full: FullRun): ResultRow {
  return {
    ...baseRow(engine, ds, c, s, p, full.text),
    fidelity: { oracle_hit: 100, attention_recall: 100, top1: 100, kl: 0 },
    cache_bytes: full.cacheBytes,
    full_cache_bytes: full.cacheBytes,
    timings: { prefill_ms: full.timings.prefillMs, compress_ms: 0, decode_ms: full.timings.decodeMs },
  };
}

function compressedRow(
  engine: EvalEngine,
  ds: LoadedDataset,
  c: EvalCase,
  s: Setting,
  p: PreparedPrompt,
  full: FullRun | null,
  mass: AttentionMass | null,
  run: CompressedRun,
  saveKept: boolean,
  outDir: string,
): ResultRow {
  if (saveKept) saveKeptPlan(outDir, engine, c, s, p, run);
  return {
    ...baseRow(engine, ds, c, s, p, run.text),
    fidelity: fidelityOf(mass, full, run),
    cache_bytes: run.cacheBytes,
    full_cache_bytes: full ? full.cacheBytes : 0,
    ...(run.peakCacheBytes !== undefined ? { peak_cache_bytes: run.peakCacheBytes } : {}),
    timings: { prefill_ms: run.timings.prefillMs, compress_ms: run.timings.compressMs, decode_ms: run.timings.decodeMs },
  };
}

/** Add one setting's kept positions to the case's kept file (created with the prompt's token texts). */
function saveKeptPlan(outDir: string, engine: EvalEngine, c: EvalCase, s: Setting, p: PreparedPrompt, run: CompressedRun): void {
  const dir = join(outDir, KEPT_DIR);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${safeName(`${c.task}__${c.id}__${s.mode}`)}.json`);
  let kf: KeptFile;
  if (existsSync(file)) {
    kf = JSON.parse(readFileSync(file, 'utf8')) as KeptFile;
  } else {
    const ids = s.mode === 'query-aware' ? [...p.contextTokens, ...p.questionTokens] : [...p.contextTokens];
    kf = {
      task: c.task,
      case: c.id,
      mode: s.mode,
      tokens: tokenTexts(engine.tokenizer, ids),
      layers: run.kept.length,
      kvHeads: run.kept[0]?.length ?? 0,
      settings: [],
    };
  }
  const options = canonicalOptions(s.press.options);
  kf.settings = kf.settings.filter(
    (r) => !(r.press === s.press.name && r.budget === s.budget && JSON.stringify(r.options) === JSON.stringify(options)),
  );
  kf.settings.push({ press: s.press.name, options, budget: s.budget, kept: run.kept.map((heads) => heads.map((h) => Array.from(h))) });
  writeFileSync(file, JSON.stringify(kf));
}
