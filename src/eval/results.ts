import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
  timings: { prefill_ms: number; compress_ms: number; decode_ms: number };
  meta: Record<string, string | number | boolean>;
}

export const RESULTS_FILE = 'results.jsonl';
export const RUN_FILE = 'run.json';

/** Rows already in OUT/results.jsonl (lines that do not parse, e.g. a run killed mid-write, are ignored). */
export function readRows(outDir: string): ResultRow[] {
  const file = join(outDir, RESULTS_FILE);
  if (!existsSync(file)) return [];
  const rows: ResultRow[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as ResultRow;
      if (typeof r.key === 'string' && typeof r.score === 'number') rows.push(r);
    } catch {
      // a partial last line from an interrupted run: that row runs again
    }
  }
  return rows;
}

/** Append-only writer: one line per finished row, so an interrupted run resumes where it stopped. */
export class RowWriter {
  private readonly file: string;

  constructor(outDir: string) {
    mkdirSync(outDir, { recursive: true });
    this.file = join(outDir, RESULTS_FILE);
    // a line cut by an interrupted run would glue onto the next row: start on a fresh line
    if (existsSync(this.file)) {
      const text = readFileSync(this.file, 'utf8');
      if (text.length > 0 && !text.endsWith('\n')) appendFileSync(this.file, '\n');
    }
  }

  append(row: ResultRow): void {
    appendFileSync(this.file, JSON.stringify(row) + '\n');
  }
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
    if (prev.model !== info.model) throw new KvevictError(`${outDir}: holds results of model "${prev.model}", not "${info.model}"; use another --out`);
    if (prev.fingerprint && info.fingerprint && prev.fingerprint !== info.fingerprint) {
      throw new KvevictError(`${outDir}: holds results of an earlier version of model "${info.model}" (its files changed); use another --out or remove ${file}`);
    }
    return;
  }
  writeFileSync(file, JSON.stringify(info, null, 2) + '\n');
}
