import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { EvalCase } from './case.js';
import { resolvedOptionFlags, trainedFilesOf, type PressSpec } from '../press/registry.js';
import { PIPELINE_MODES, type PipelineMode } from '../generate/pipeline.js';
import { KvevictError } from '../errors.js';

export { parsePress, type PressSpec } from '../press/registry.js';

/** The two modes of the pipeline (src/generate/pipeline.ts), as the grid names them. */
export const MODES = PIPELINE_MODES;
export type Mode = PipelineMode;

export type OptionValue = string | number | boolean;

/** One point of the grid. */
export interface Setting {
  press: PressSpec;
  budget: number;
  mode: Mode;
}

/** Options sorted by key, so equal settings give equal keys. */
export function canonicalOptions(o: Record<string, OptionValue>): Record<string, OptionValue> {
  const out: Record<string, OptionValue> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k];
  return out;
}

/** A method's label for tables and charts: "snapkv" or "snapkv(pool=avg,window=64)". */
export function pressLabel(p: PressSpec): string {
  const keys = Object.keys(p.options).sort();
  if (keys.length === 0) return p.name;
  return `${p.name}(${keys.map((k) => `${k}=${String(p.options[k])}`).join(',')})`;
}

/**
 * A row's key: the setting and the case, with a digest of everything in the case that decides the row's
 * output (its text, answers, metric and answer length), so that a rerun after a case changed computes it
 * again instead of keeping the old score.
 */
export function rowKey(c: EvalCase, press: PressSpec, budget: number, mode: Mode, model = ''): string {
  return JSON.stringify([
    c.task,
    c.id,
    press.name,
    canonicalOptions(press.options),
    budget,
    mode,
    caseDigest(c),
    settingDigest(press, model),
  ]);
}

/** A trained file as a row's key sees it: name, size and modification time ('missing' when absent). */
function fileStamp(file: string): string {
  if (!existsSync(file)) return `${basename(file)}:missing`;
  const st = statSync(file);
  return `${basename(file)}:${st.size}:${Math.round(st.mtimeMs)}`;
}

/**
 * A digest of what else decides a row: every option the method takes with its value (the defaults too, so a
 * changed default does not keep old rows), the trained files it reads (Judge Q's, LookaheadKV's) and the
 * model's fingerprint.
 */
export function settingDigest(press: PressSpec, model: string): string {
  let full: Record<string, OptionValue> = press.options;
  let files: string[] = [];
  try {
    full = { ...(resolvedOptionFlags(press.name, press.options) as Record<string, OptionValue>), ...press.options };
    files = trainedFilesOf(press.name, press.options).map(fileStamp);
  } catch {
    // an unknown method: refused elsewhere, keyed by what was given
  }
  return createHash('sha256')
    .update(JSON.stringify(files.length ? [canonicalOptions(full), model, files] : [canonicalOptions(full), model]))
    .digest('hex')
    .slice(0, 16);
}

export function caseDigest(c: EvalCase): string {
  const what = [c.before, c.context, c.after, c.question, c.answers, c.scoring, c.maxNewTokens, c.chat, c.answerPrefix];
  return createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 16);
}

export function parseMode(s: string, where = '--mode'): Mode {
  if (!(MODES as readonly string[]).includes(s)) throw new KvevictError(`${where}: unknown mode "${s}" (modes: ${MODES.join(', ')})`);
  return s as Mode;
}

/** Budgets from "64,128": positive integers. */
export function parseBudgets(items: readonly string[], where = '--budget'): number[] {
  return items.map((b) => {
    const n = Number(b);
    if (!/^\s*\d+\s*$/.test(b) || !Number.isSafeInteger(n) || n <= 0)
      throw new KvevictError(`${where}: budget "${b}" must be a positive integer`);
    return n;
  });
}

/** The grid of methods x budgets x modes, in that nesting order. */
export function makeGrid(presses: readonly PressSpec[], budgets: readonly number[], modes: readonly Mode[]): Setting[] {
  if (presses.length === 0 || budgets.length === 0 || modes.length === 0)
    throw new KvevictError('empty grid: give at least one --press, one --budget and one --mode');
  const out: Setting[] = [];
  const seen = new Set<string>();
  for (const mode of modes) {
    for (const press of presses) {
      for (const budget of budgets) {
        // a setting given twice (--budget 64,64) runs once
        const key = JSON.stringify([press.name, canonicalOptions(press.options), budget, mode]);
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ press, budget, mode });
      }
    }
  }
  return out;
}
