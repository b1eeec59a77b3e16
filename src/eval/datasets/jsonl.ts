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
  const bytes = readFileSync(file);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const out: JsonlLine[] = [];
  // lines split on the bytes, so that a line that is not UTF-8 is named instead of read as replacement characters
  let start = 0,
    i = 0;
  const lines: (string | null)[] = [];
  for (; start <= bytes.length; i++) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    try {
      lines.push(decoder.decode(bytes.subarray(start, end)));
    } catch {
      lines.push(null);
    }
    start = end + 1;
  }
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    if (lines[i] === null) {
      out.push({ line, problem: `${file}:${line}: not valid UTF-8` });
      continue;
    }
    // a byte-order mark at the start of the file is not part of the first line
    const raw = (i === 0 ? lines[i]!.replace(/^\uFEFF/, '') : lines[i]!).replace(/\r$/, '');
    if (raw.trim() === '') continue;
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

/** A required string field; not empty or blank unless `allowEmpty`. */
export function needString(o: JsonObject, key: string, allowEmpty = false): string {
  const v = o[key];
  if (v === undefined || v === null) throw new LineError(`missing "${key}"`);
  if (typeof v !== 'string') throw new LineError(`"${key}" must be a string`);
  if (!allowEmpty && v.trim() === '') throw new LineError(`"${key}" is empty`);
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
  if (typeof v === 'string') {
    if (v.trim() === '') throw new LineError(`"${key}" is empty`);
    return [v];
  }
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string'))
    throw new LineError(`"${key}" must be a non-empty list of strings`);
  if ((v as string[]).some((x) => x.trim() === '')) throw new LineError(`"${key}" holds an empty answer`);
  return v as string[];
}

/**
 * Map every good line through `make`; LineErrors (and problems from parsing) become "FILE:LINE: why"
 * entries and the line is skipped.
 */
export function mapLines<T>(
  file: string,
  lines: JsonlLine[],
  make: (value: JsonObject, line: number) => T,
): { items: T[]; problems: string[] } {
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
