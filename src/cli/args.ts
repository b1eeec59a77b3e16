import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs as nodeParseArgs } from 'node:util';
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
 * Strict `--name value` / `--name=value` / `--flag` parsing (node:util parseArgs), with typed values. Unknown
 * options, missing values and bad values throw a one-line KvevictError naming the option. Options are named
 * without the dashes in `specs` (e.g. "max-new-tokens").
 */
export function parseArgs(argv: string[], specs: OptionSpecs, command: string): Parsed {
  const config = Object.fromEntries(
    Object.entries(specs).map(([name, spec]) => [name, { type: spec.type === 'boolean' ? ('boolean' as const) : ('string' as const) }]),
  );
  let parsed: ReturnType<typeof nodeParseArgs>;
  try {
    parsed = nodeParseArgs({ args: argv, options: config, strict: true, allowPositionals: true });
  } catch (e) {
    throw new KvevictError(`${command}: ${argumentError(e as Error & { code?: string }, command)}`);
  }
  const options: ParsedOptions = {};
  for (const [name, value] of Object.entries(parsed.values)) {
    const spec = specs[name];
    options[name] = typeof value === 'boolean' ? value : convert(command, name, spec, value as string);
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (options[name] === undefined && spec.default !== undefined) options[name] = spec.default;
  }
  return { options, positionals: parsed.positionals };
}

/** node:util's parse errors, in one line naming the option. */
function argumentError(e: Error & { code?: string }, command: string): string {
  const option = /'(-[^' ]+)/.exec(e.message)?.[1] ?? '';
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option} (see kvevict ${command} --help)`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(e.message)) return `${option} takes no value`;
      if (/ambiguous/.test(e.message)) return `${option}: a value starting with a dash goes as ${option}=VALUE`;
      return `${option} needs a value`;
    default:
      return e.message.split('\n')[0];
  }
}

function convert(command: string, name: string, spec: OptionSpec, value: string): string | number | string[] {
  switch (spec.type) {
    case 'string':
      return value;
    case 'list': {
      const items = value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
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
      if (!/^\s*[+-]?\d+\s*$/.test(value) || !Number.isSafeInteger(n))
        throw new KvevictError(`${command}: --${name} must be an integer, got "${value}"`);
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

/**
 * A command's options: parsed, then --help printed (`more` after the options' table; null returned, the command
 * is done) and positional arguments refused, the first by name with `hint` after it.
 */
export function commandOptions(
  argv: string[],
  specs: OptionSpecs,
  command: string,
  usage: string,
  o: { more?: string; hint?: string } = {},
): ParsedOptions | null {
  const { options, positionals } = parseArgs(argv, specs, command);
  if (options.help) {
    process.stdout.write(formatHelp(usage, specs) + (o.more ? '\n\n' + o.more : '') + '\n');
    return null;
  }
  if (positionals.length) throw new KvevictError(`${command}: unexpected argument "${positionals[0]}"${o.hint ?? ''}`);
  return options;
}

/**
 * An output path checked before any work starts: a file must not be a folder and its folder must exist;
 * a folder must not be a file, and the nearest existing folder above it must be writable.
 */
export function checkOutputPath(path: string, kind: 'file' | 'folder', option: string): string {
  const full = resolve(path);
  if (kind === 'file') {
    if (existsSync(full) && statSync(full).isDirectory()) throw new KvevictError(`${option} ${path}: is a folder, not a file`);
    const parent = dirname(full);
    if (!existsSync(parent) || !statSync(parent).isDirectory())
      throw new KvevictError(`${option} ${path}: folder ${parent} does not exist`);
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

/** Typed getters that throw a KvevictError naming the option. */
export function requireString(o: ParsedOptions, name: string, command: string): string {
  const v = o[name];
  if (typeof v !== 'string') throw new KvevictError(`${command}: --${name} is required`);
  return v;
}
