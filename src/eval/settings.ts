import { KvevictError } from '../errors.js';

export const MODES = ['query-aware', 'query-agnostic'] as const;
export type Mode = (typeof MODES)[number];

export type OptionValue = string | number | boolean;

/** One method with its options, as given on the command line: "snapkv" or "snapkv:window=64:pool=avg". */
export interface PressSpec {
  name: string;
  options: Record<string, OptionValue>;
}

/** One point of the grid. */
export interface Setting {
  press: PressSpec;
  budget: number;
  mode: Mode;
}

function parseValue(v: string): OptionValue {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return v;
}

/** Parse "name[:key=value...]"; `where` names the option for errors. */
export function parsePressSpec(spec: string, where = '--press'): PressSpec {
  const [name, ...parts] = spec.split(':');
  if (!/^[a-z0-9][a-z0-9_+-]*$/i.test(name)) throw new KvevictError(`${where}: bad method "${spec}" (expected name or name:key=value:key=value)`);
  const options: Record<string, OptionValue> = {};
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new KvevictError(`${where}: bad option "${p}" in "${spec}" (expected key=value)`);
    options[p.slice(0, eq)] = parseValue(p.slice(eq + 1));
  }
  return { name: name.toLowerCase(), options };
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

/** The resume key of a result row: the case (task + id), the method and options, the budget and the mode. */
export function rowKey(task: string, caseId: string, press: PressSpec, budget: number, mode: Mode): string {
  return JSON.stringify([task, caseId, press.name, canonicalOptions(press.options), budget, mode]);
}

export function parseMode(s: string, where = '--mode'): Mode {
  if (!(MODES as readonly string[]).includes(s)) throw new KvevictError(`${where}: unknown mode "${s}" (modes: ${MODES.join(', ')})`);
  return s as Mode;
}

/** Budgets from "64,128": positive integers. */
export function parseBudgets(items: readonly string[], where = '--budget'): number[] {
  return items.map((b) => {
    const n = Number(b);
    if (!Number.isInteger(n) || n <= 0) throw new KvevictError(`${where}: budget "${b}" must be a positive integer`);
    return n;
  });
}

/** The grid of methods x budgets x modes, in that nesting order. */
export function makeGrid(presses: readonly PressSpec[], budgets: readonly number[], modes: readonly Mode[]): Setting[] {
  if (presses.length === 0 || budgets.length === 0 || modes.length === 0) throw new KvevictError('empty grid: give at least one --press, one --budget and one --mode');
  const out: Setting[] = [];
  for (const mode of modes) for (const press of presses) for (const budget of budgets) out.push({ press, budget, mode });
  return out;
}
