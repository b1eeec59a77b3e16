import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KvevictError } from '../errors.js';

/** One option a command accepts. */
export interface OptionSpec {
  type: 'string' | 'number' | 'int' | 'boolean' | 'list';
  /** one-line help */
  help: string;
  default?: string | number | boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;
export type ParsedOptions = Record<string, string | number | boolean | string[] | undefined>;

export interface Parsed {
  options: ParsedOptions;
  positionals: string[];
}

/**
 * Strict `--name value` / `--name=value` / `--flag` parsing. Unknown options and bad values throw a
 * KvevictError naming the option. Options are named without the dashes in `specs` (e.g. "max-new-tokens").
 */
export function parseArgs(argv: string[], specs: OptionSpecs, command: string): Parsed {
  const options: ParsedOptions = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const spec = specs[name];
    if (!spec) throw new KvevictError(`${command}: unknown option --${name} (see kvevict ${command} --help)`);
    if (spec.type === 'boolean') {
      if (value !== undefined && value !== 'true' && value !== 'false') throw new KvevictError(`${command}: --${name} takes no value`);
      options[name] = value !== 'false';
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new KvevictError(`${command}: --${name} needs a value`);
      value = argv[++i];
    }
    options[name] = convert(command, name, spec, value);
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (options[name] === undefined && spec.default !== undefined) options[name] = spec.default;
  }
  return { options, positionals };
}

function convert(command: string, name: string, spec: OptionSpec, value: string): string | number | string[] {
  switch (spec.type) {
    case 'string':
      return value;
    case 'list': {
      const items = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
      if (items.length === 0) throw new KvevictError(`${command}: --${name} needs a comma-separated list, got "${value}"`);
      return items;
    }
    case 'number': {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) throw new KvevictError(`${command}: --${name} must be a number, got "${value}"`);
      return n;
    }
    case 'int': {
      const n = Number(value);
      // decimal digits only: Number() would also read "0x10" as 16 and "1e3" as 1000
      if (!/^\s*[+-]?\d+\s*$/.test(value) || !Number.isSafeInteger(n)) throw new KvevictError(`${command}: --${name} must be an integer, got "${value}"`);
      return n;
    }
    default:
      throw new Error(`internal error: option type ${String(spec.type)}`);
  }
}

/** Help text listing the options. */
export function formatHelp(usage: string, specs: OptionSpecs): string {
  const lines = [`usage: ${usage}`, '', 'options:'];
  for (const [name, s] of Object.entries(specs)) {
    const def = s.default !== undefined ? ` (default ${String(s.default)})` : '';
    lines.push(`  --${name.padEnd(18)} ${s.help}${def}`);
  }
  return lines.join('\n');
}

/** Typed getters that throw a KvevictError naming the option. */
/**
 * An output path checked before any work starts: a file must not be a folder and its folder must exist;
 * a folder must not be a file, and the nearest existing folder above it must be writable.
 */
export function checkOutputPath(path: string, kind: 'file' | 'folder', option: string): string {
  const full = resolve(path);
  if (kind === 'file') {
    if (existsSync(full) && statSync(full).isDirectory()) throw new KvevictError(`${option} ${path}: is a folder, not a file`);
    const parent = dirname(full);
    if (!existsSync(parent) || !statSync(parent).isDirectory()) throw new KvevictError(`${option} ${path}: folder ${parent} does not exist`);
    writable(parent, option, path);
    return full;
  }
  if (existsSync(full) && !statSync(full).isDirectory()) throw new KvevictError(`${option} ${path}: is a file, not a folder`);
  let up = full;
  while (!existsSync(up)) up = dirname(up);
  if (!statSync(up).isDirectory()) throw new KvevictError(`${option} ${path}: ${up} is a file, not a folder`);
  writable(up, option, path);
  return full;
}

function writable(dir: string, option: string, path: string): void {
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new KvevictError(`${option} ${path}: folder ${dir} is not writable`);
  }
}

export function requireString(o: ParsedOptions, name: string, command: string): string {
  const v = o[name];
  if (typeof v !== 'string') throw new KvevictError(`${command}: --${name} is required`);
  return v;
}
