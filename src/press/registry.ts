import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { KvevictError } from '../errors.js';
import type { BudgetSpec } from './budget-spec.js';
import { composition, pressOf, type Method, type Wrapper } from './method.js';
import { adakv } from './methods/adakv.js';
import { chunkkv } from './methods/chunkkv.js';
import { criticalkv } from './methods/criticalkv.js';
import { defensivekv, layerDefensivekv } from './methods/defensivekv.js';
import { expectedAttention } from './methods/expected-attention.js';
import { full } from './methods/full.js';
import { h2o } from './methods/h2o.js';
import { judgeq, judgeqLaq, judgeqWindow } from './methods/judgeq.js';
import { keydiff } from './methods/keydiff.js';
import { knorm } from './methods/knorm.js';
import { kvzip } from './methods/kvzip.js';
import { laq, laqPlus } from './methods/laq.js';
import { lookaheadkv } from './methods/lookaheadkv.js';
import { pyramidkv } from './methods/pyramidkv.js';
import { random } from './methods/random.js';
import { snapkv } from './methods/snapkv.js';
import { streaming } from './methods/streaming.js';
import { tova } from './methods/tova.js';
import { choiceOption, describeOption, optionFlag, optionKey, type OptionSpec, type OptionSpecs } from './option-spec.js';
import { ScorePress } from './score-press.js';
import type { Press } from './types.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyMethod = Method<any> | Wrapper<any>;

/** Every method, in display order: adding one is its file and a line here. */
const METHODS: readonly AnyMethod[] = [
  full,
  random,
  streaming,
  knorm,
  keydiff,
  h2o,
  tova,
  snapkv,
  pyramidkv,
  adakv,
  chunkkv,
  criticalkv,
  expectedAttention,
  defensivekv,
  layerDefensivekv,
  kvzip,
  laq,
  laqPlus,
  judgeq,
  judgeqLaq,
  judgeqWindow,
  lookaheadkv,
];

/** Options of a press as the library takes them: the budget or the ratio, and the method's own options. */
export interface PressOptions {
  /** entries kept per KV head per layer (window included) */
  budget?: number;
  /** fraction of the prompt removed: keep round(L (1 - ratio)) */
  ratio?: number;
  /** the method's options, by their library name (noWindow) or their press-string name (no-window) */
  [option: string]: unknown;
}

/** Every method name `makePress` knows, in display order. */
export const PRESS_NAMES: readonly string[] = METHODS.map((m) => m.name);

function isWrapper(m: AnyMethod): m is Wrapper {
  return 'wrap' in m;
}

/** The methods a wrapper can wrap: those with a scorer and the default allocator. */
export const WRAPPABLE: readonly string[] = METHODS.filter((m): m is Method => !isWrapper(m))
  .filter((m) => m.scorer && !m.allocator)
  .map((m) => m.name);

function lookup(name: string): AnyMethod {
  const m = METHODS.find((x) => x.name === name);
  if (!m) throw new KvevictError(`unknown press "${name}" (presses: ${PRESS_NAMES.join(', ')})`);
  return m;
}

function plainMethod(name: string): Method {
  return lookup(name) as Method;
}

function scorerOption(w: Wrapper): OptionSpec<string> {
  return choiceOption(WRAPPABLE, { default: w.defaultScorer, help: `the method whose scores ${w.name} wraps` });
}

/** The wrapped method of a wrapper, checked. */
function wrappedOf(w: Wrapper, scorer: unknown): Method {
  const name = scorerOption(w).parse(scorer ?? w.defaultScorer, `press ${w.name}: scorer`);
  return plainMethod(name);
}

/**
 * Every option a method takes besides the budget, with its spec, by library name. A wrapper takes its own,
 * `scorer`, and the wrapped method's (given by `scorer`, or the wrapper's default).
 */
export function optionSpecsOf(name: string, scorer?: string): OptionSpecs {
  const m = lookup(name);
  if (!isWrapper(m)) return m.options;
  return { ...m.options, scorer: scorerOption(m), ...wrappedOf(m, scorer).options };
}

/** The library names of the options a method takes (see optionSpecsOf). */
export function optionsOf(name: string, scorer?: string): readonly string[] {
  return Object.keys(optionSpecsOf(name, scorer));
}

/** One-line description of a method. */
export function describePress(name: string): string {
  return lookup(name).summary;
}

/** Every method with its summary and its options, for the commands' help. */
export function pressHelp(): string {
  const lines = ['methods (--press NAME[:key=value...]; defaults shown):'];
  for (const m of METHODS) {
    const opts = Object.entries(m.options as OptionSpecs).map(([k, s]) => describeOption(k, s));
    if (isWrapper(m)) opts.push(`scorer=${m.defaultScorer} (one of ${WRAPPABLE.join(', ')}; its options too)`);
    lines.push(`  ${m.name.padEnd(19)} ${m.summary}`);
    if (opts.length > 0) lines.push(`  ${''.padEnd(19)}   ${opts.join(' ')}`);
  }
  return lines.join('\n');
}

/** The value of every option a method takes (defaults filled in), by press-string name: what decides its result. */
export function resolvedOptionFlags(name: string, given: Record<string, unknown>): Record<string, unknown> {
  const byKey = normalizeKeys(name, given);
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(optionSpecsOf(name, byKey.scorer as string | undefined)))
    out[optionFlag(key)] = byKey[key] ?? spec.default;
  return out;
}

/** The trained files a method with these options reads (each file option resolved to its path). */
export function trainedFilesOf(name: string, given: Record<string, unknown>): string[] {
  const byKey = normalizeKeys(name, given);
  const out: string[] = [];
  for (const [key, spec] of Object.entries(optionSpecsOf(name, byKey.scorer as string | undefined)))
    if (spec.file !== undefined) out.push(typeof byKey[key] === 'string' && byKey[key] !== '' ? (byKey[key] as string) : spec.file);
  return out;
}

/**
 * Each given option checked against the method's specs and parsed by its own (names in the message as the user
 * wrote them; `where` prefixes every message).
 */
function parseOptions(name: string, specs: OptionSpecs, given: [string, unknown][], where: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [flag, v] of given) {
    const spec = specs[optionKey(flag)];
    if (!spec) {
      const takes = Object.keys(specs).map(optionFlag).join(', ') || 'none';
      throw new KvevictError(`${where}press ${name} does not take option ${flag} (its options: ${takes})`);
    }
    out[optionKey(flag)] = spec.parse(v, `${where}press ${name}: ${flag}`);
  }
  return out;
}

function normalizeKeys(name: string, options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    const key = optionKey(k);
    if (key in out) throw new KvevictError(`press ${name}: option ${optionFlag(key)} given twice`);
    out[key] = v;
  }
  return out;
}

/**
 * Build a press by name. Throws a one-line KvevictError for an unknown method, an option the method does not
 * take, a value out of its range, a missing or doubled budget, a budget below 1, a ratio outside [0, 1), or
 * entries the method keeps as they are (a window, sinks) that do not fit in the budget.
 */
export function makePress(name: string, options: PressOptions = {}): Press {
  const m = lookup(name);
  const { budget, ratio, ...rest } = normalizeKeys(name, options);
  const specs = optionSpecsOf(name, rest.scorer as string | undefined);
  const values = parseOptions(
    name,
    specs,
    Object.entries(rest).map(([k, v]) => [optionFlag(k), v]),
    '',
  );
  for (const [key, spec] of Object.entries(specs)) if (!(key in values)) values[key] = spec.default;

  const needsBudget = isWrapper(m) || (m as Method).needsBudget !== false;
  if (!needsBudget) {
    if (budget !== undefined || ratio !== undefined) throw new KvevictError(`press ${name} takes no budget (it keeps everything)`);
    return pressOf(m as Method, values, { budget: 1 });
  }
  if (budget !== undefined && ratio !== undefined) throw new KvevictError(`press ${name}: give a budget or a ratio, not both`);
  if (budget === undefined && ratio === undefined)
    throw new KvevictError(`press ${name} needs a budget (--budget B) or a ratio (--ratio R)`);
  let spec: BudgetSpec;
  if (budget !== undefined) {
    if (typeof budget !== 'number' || !Number.isSafeInteger(budget) || budget < 1)
      throw new KvevictError(`press ${name}: budget must be an integer >= 1, got ${String(budget)}`);
    checkKeptFit(name, specs, values, budget);
    spec = { budget };
  } else {
    if (typeof ratio !== 'number' || !(ratio >= 0 && ratio < 1))
      throw new KvevictError(`press ${name}: ratio must be in [0, 1), got ${String(ratio)}`);
    spec = { ratio };
  }
  if (!isWrapper(m)) return pressOf(m, values, spec);
  const inner = wrappedOf(m, values.scorer);
  const c = m.wrap(composition(inner, values, spec), values, spec);
  return new ScorePress(`${m.name}(${inner.name})`, c.scorer, c.allocator, spec);
}

/** With a fixed budget, the entries a method keeps as they are must fit in it. */
function checkKeptFit(name: string, specs: OptionSpecs, values: Record<string, unknown>, budget: number): void {
  for (const [key, spec] of Object.entries(specs)) {
    const kept = typeof spec.kept === 'function' ? spec.kept(values) : spec.kept === true;
    const n = values[key] as number;
    if (kept && n > budget) throw new KvevictError(`press ${name}: ${optionFlag(key)} ${n} is larger than the budget ${budget}`);
  }
}

/** One method with its options, as written in a press string: "snapkv" or "snapkv:window=64:pool=avg". */
export interface PressSpec {
  name: string;
  /** the options as written (press-string names), each value parsed by its spec */
  options: Record<string, string | number | boolean>;
}

/**
 * Parse and check "name[:key=value...]", the one press syntax of every command, the server and the library.
 * `where` names the option or field for errors. The options are checked against the method (names, types,
 * ranges); the budget is not part of the string.
 */
export function parsePress(text: string, where = '--press'): PressSpec {
  const [rawName, ...parts] = text.split(':');
  const name = rawName.trim().toLowerCase();
  if (!/^[a-z0-9][a-z0-9_+-]*$/.test(name))
    throw new KvevictError(`${where}: bad method "${text}" (expected NAME or NAME:key=value:key=value)`);
  if (!PRESS_NAMES.includes(name)) throw new KvevictError(`${where}: unknown press "${name}" (presses: ${PRESS_NAMES.join(', ')})`);
  const raw: Record<string, string> = {};
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new KvevictError(`${where}: bad option "${p}" in "${text}" (expected key=value)`);
    const flag = p.slice(0, eq).trim();
    if (flag === 'budget' || flag === 'ratio')
      throw new KvevictError(`${where}: the ${flag} is given apart from the press (--${flag}), not in "${text}"`);
    if (flag in raw) throw new KvevictError(`${where}: option ${flag} given twice in "${text}"`);
    raw[flag] = p.slice(eq + 1).trim();
  }
  const specs = optionSpecsOf(name, raw.scorer);
  const parsed = parseOptions(name, specs, Object.entries(raw), `${where}: `);
  const options = Object.fromEntries(Object.keys(raw).map((flag) => [flag, parsed[optionKey(flag)]])) as PressSpec['options'];
  return { name, options };
}

/** Where a model keeps its own trained file of the name of `defaultFile`: in its folder (a GGUF file's: beside it). */
export function modelFileFor(defaultFile: string, modelPath: string): string {
  const folder = existsSync(modelPath) && statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  return join(folder, basename(defaultFile));
}

/**
 * The press with each trained-file option left at its default (Judge Q's `soft`, LookaheadKV's `modules`) pointed
 * at the model's own file of that name (`judgeq.safetensors` beside the model's weights), where there is one: a
 * method's default file belongs to the embedded model, and another model's folder carries its own. Without a
 * model path the spec is returned as it is.
 */
export function withModelFiles(spec: PressSpec, modelPath: string | undefined): PressSpec {
  if (modelPath === undefined) return spec;
  const byKey = normalizeKeys(spec.name, spec.options);
  const options = { ...spec.options };
  for (const [key, s] of Object.entries(optionSpecsOf(spec.name, byKey.scorer as string | undefined))) {
    if (s.file === undefined || (typeof byKey[key] === 'string' && byKey[key] !== '')) continue;
    const own = modelFileFor(s.file, modelPath);
    if (resolve(own) !== resolve(s.file) && existsSync(own)) options[optionFlag(key)] = own;
  }
  return { name: spec.name, options };
}

/** The press of a parsed press string with a budget (or ratio). */
export function pressFromSpec(spec: PressSpec, budget: { budget?: number; ratio?: number }): Press {
  return makePress(spec.name, { ...spec.options, ...budget });
}
