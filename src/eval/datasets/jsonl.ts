import { existsSync, readFileSync, statSync } from 'node:fs';
import { KvevictError } from '../../errors.js';

export type JsonObject = Record<string, unknown>;

/** One parsed line, or the reason it was skipped ("FILE:LINE: why"). */
export type JsonlLine = { line: number; value: JsonObject } | { line: number; problem: string };

/** A bad field in a line: the loader turns it into a "FILE:LINE: message" problem. */
export class LineError extends Error {}

/**
 * Read a JSONL file: one JSON object per non-blank line. A missing file is a user error; a line that
 * is not a JSON object becomes a problem naming FILE:LINE, and the other lines still load.
 */
export function readJsonl(file: string): JsonlLine[] {
  if (!existsSync(file) || !statSync(file).isFile()) throw new KvevictError(`${file}: dataset file not found`);
  const text = readFileSync(file, 'utf8');
  const out: JsonlLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, '');
    if (raw.trim() === '') continue;
    const line = i + 1;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      out.push({ line, problem: `${file}:${line}: invalid JSON (${(e as Error).message})` });
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      out.push({ line, problem: `${file}:${line}: expected a JSON object` });
      continue;
    }
    out.push({ line, value: value as JsonObject });
  }
  return out;
}

/** A required string field. */
export function needString(o: JsonObject, key: string): string {
  const v = o[key];
  if (v === undefined || v === null) throw new LineError(`missing "${key}"`);
  if (typeof v !== 'string') throw new LineError(`"${key}" must be a string`);
  return v;
}

/** An optional string field ('' when absent). */
export function optString(o: JsonObject, key: string): string {
  const v = o[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new LineError(`"${key}" must be a string`);
  return v;
}

/** A required non-empty list of strings (a single string is accepted as a list of one). */
export function needStrings(o: JsonObject, key: string): string[] {
  const v = o[key];
  if (v === undefined || v === null) throw new LineError(`missing "${key}"`);
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string')) throw new LineError(`"${key}" must be a non-empty list of strings`);
  return v as string[];
}

/**
 * Map every good line through `make`; LineErrors (and problems from parsing) become "FILE:LINE: why"
 * entries and the line is skipped.
 */
export function mapLines<T>(file: string, lines: JsonlLine[], make: (value: JsonObject, line: number) => T): { items: T[]; problems: string[] } {
  const items: T[] = [];
  const problems: string[] = [];
  for (const l of lines) {
    if ('problem' in l) {
      problems.push(l.problem);
      continue;
    }
    try {
      items.push(make(l.value, l.line));
    } catch (e) {
      if (e instanceof LineError || e instanceof KvevictError) problems.push(`${file}:${l.line}: ${e.message}`);
      else throw e;
    }
  }
  return { items, problems };
}
