import { appendFileSync, existsSync, mkdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { KvevictError } from '../errors.js';
import type { MetricName } from './metrics/index.js';
import type { Mode, OptionValue } from './settings.js';

/** Fidelity figures of one row: percentages, except KL in nats; null where not measured. */
export interface FidelityFigures {
  oracle_hit: number | null;
  attention_recall: number | null;
  top1: number | null;
  kl: number | null;
}

/** One JSONL row of OUT/results.jsonl: one case under one setting. */
export interface ResultRow {
  key: string;
  model: string;
  dataset: string;
  task: string;
  case: string;
  press: string;
  options: Record<string, OptionValue>;
  budget: number;
  mode: Mode;
  /** prompt tokens (context + question parts) */
  prompt_tokens: number;
  /** tokens of the compressible part in this mode */
  compressible_tokens: number;
  /** tokens cut from the middle of a too-long prompt (0: none) */
  truncated_tokens: number;
  prediction: string;
  answers: string[];
  metric: MetricName;
  /** 0..100 */
  score: number;
  fidelity: FidelityFigures;
  /** live cache bytes after compression, and with the full cache */
  cache_bytes: number;
  full_cache_bytes: number;
  /** the most cache bytes the compression held at once (the full prompt cache for a one-shot compression) */
  peak_cache_bytes?: number;
  timings: { prefill_ms: number; compress_ms: number; decode_ms: number };
  meta: Record<string, string | number | boolean>;
  /** the row's digest (rowCheck), written with it */
  check?: string;
}

export const RESULTS_FILE = 'results.jsonl';
export const RUN_FILE = 'run.json';

/** Rows already in OUT/results.jsonl, and the lines that are not rows (by line number, for a report to name). */
export function readRowsWithProblems(outDir: string): { rows: ResultRow[]; malformed: number[] } {
  const file = join(outDir, RESULTS_FILE);
  if (!existsSync(file)) return { rows: [], malformed: [] };
  const rows: ResultRow[] = [];
  const malformed: number[] = [];
  const seen = new Set<string>();
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      try {
        const r = JSON.parse(line) as ResultRow;
        if (!isRow(r)) throw new Error('not a row');
        if (seen.has(r.key)) return; // a row written twice counts once
        seen.add(r.key);
        rows.push(r);
      } catch {
        malformed.push(i + 1);
      }
    });
  return { rows, malformed };
}

/** A row's digest over everything else in it: a row edited by hand or by a damaged disk reads as no row. */
export function rowCheck(row: Omit<ResultRow, 'check'>): string {
  const { check: _drop, ...rest } = row as ResultRow;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 16);
}

/** Every field a row may have: one that is not among them (a damaged name) makes the line no row. */
const ROW_FIELDS = new Set([
  'key',
  'model',
  'dataset',
  'task',
  'case',
  'press',
  'options',
  'budget',
  'mode',
  'prompt_tokens',
  'compressible_tokens',
  'truncated_tokens',
  'prediction',
  'answers',
  'metric',
  'score',
  'fidelity',
  'cache_bytes',
  'full_cache_bytes',
  'peak_cache_bytes',
  'timings',
  'meta',
  'check',
]);

function isRow(r: unknown): r is ResultRow {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return false;
  const o = r as Record<string, unknown>;
  if (Object.keys(o).some((k) => !ROW_FIELDS.has(k))) return false;
  if (typeof o.key !== 'string' || typeof o.score !== 'number' || !(o.score >= 0 && o.score <= 100)) return false;
  if (typeof o.case !== 'string' || typeof o.press !== 'string' || typeof o.mode !== 'string') return false;
  if (typeof o.budget !== 'number' || !Number.isInteger(o.budget) || o.budget < 1) return false;
  // what the summaries and the report read
  if (typeof o.task !== 'string' || typeof o.dataset !== 'string' || typeof o.prediction !== 'string' || !Array.isArray(o.answers))
    return false;
  if (typeof o.options !== 'object' || o.options === null || typeof o.fidelity !== 'object' || o.fidelity === null) return false;
  // rows written since rows carry their digest must match it; older rows are taken as they are
  return o.check === undefined || o.check === rowCheck(o as unknown as ResultRow);
}

/** Rows already in OUT/results.jsonl (lines that are not rows are left out; readRowsWithProblems names them). */
export function readRows(outDir: string): ResultRow[] {
  return readRowsWithProblems(outDir).rows;
}

/**
 * Append-only writer: one line per finished row, so an interrupted run resumes where it stopped. One writer
 * per folder: OUT/.lock holds the writer's pid; a second writer is refused, a lock left by a dead process is
 * taken over. A last line cut by an interrupted run is removed (and said), so the file stays valid JSONL.
 */
export class RowWriter {
  private readonly file: string;
  private readonly lock: string;

  constructor(outDir: string, log: (line: string) => void = () => {}) {
    mkdirSync(outDir, { recursive: true });
    this.file = join(outDir, RESULTS_FILE);
    this.lock = join(outDir, LOCK_FILE);
    takeLock(this.lock, outDir);
    if (existsSync(this.file)) {
      const text = readFileSync(this.file, 'utf8');
      if (text.length > 0 && !text.endsWith('\n')) {
        const keep = text.lastIndexOf('\n') + 1;
        truncateSync(this.file, Buffer.byteLength(text.slice(0, keep), 'utf8'));
        log(
          `kvevict: ${this.file}: removed a torn last line (${text.length - keep} characters) left by an interrupted run; its row runs again\n`,
        );
      }
    }
  }

  append(row: ResultRow): void {
    appendFileSync(this.file, JSON.stringify({ ...row, check: rowCheck(row) }) + '\n');
  }

  /** Give the folder back to other writers. */
  close(): void {
    try {
      if (existsSync(this.lock) && readFileSync(this.lock, 'utf8').trim() === String(process.pid)) unlinkSync(this.lock);
    } catch {
      // already gone
    }
  }
}

export const LOCK_FILE = '.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function takeLock(lock: string, outDir: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = Number(readFileSync(lock, 'utf8').trim());
    if (holder === process.pid) return;
    if (Number.isInteger(holder) && holder > 0 && alive(holder)) {
      throw new KvevictError(`${outDir}: another kvevict (pid ${holder}) is writing results here; wait for it or use another --out`);
    }
    unlinkSync(lock); // left by a process that is gone
  }
  throw new KvevictError(`${lock}: could not take the results folder's lock`);
}

/** What a results folder was made with; a second run into the same folder must use the same model. */
export interface RunInfo {
  model: string;
  /** changes when the model's files change (sizes and times of config and weights) */
  fingerprint?: string;
}

export function checkRunInfo(outDir: string, info: RunInfo): void {
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, RUN_FILE);
  if (existsSync(file)) {
    let prev: RunInfo;
    try {
      prev = JSON.parse(readFileSync(file, 'utf8')) as RunInfo;
    } catch {
      throw new KvevictError(`${file}: not valid JSON; remove it or use another --out`);
    }
    if (prev.model !== info.model)
      throw new KvevictError(`${outDir}: holds results of model "${prev.model}", not "${info.model}"; use another --out`);
    if (prev.fingerprint && info.fingerprint && prev.fingerprint !== info.fingerprint) {
      throw new KvevictError(
        `${outDir}: holds results of an earlier version of model "${info.model}" (its files changed) or of another --chunk-compress or --kv-dtype; use another --out or remove ${file}`,
      );
    }
    return;
  }
  writeFileSync(file, JSON.stringify(info, null, 2) + '\n');
}
