import { KvevictError } from '../errors.js';

/**
 * One option of an eviction method, declared by the method itself: its type, default, range and help. The
 * registry, the option checks, the `NAME:key=value` parser and every command's help are derived from these.
 */
export interface OptionSpec<T = unknown> {
  readonly type: 'int' | 'number' | 'boolean' | 'string' | 'choice';
  readonly default: T;
  readonly help: string;
  /** the choices of a 'choice' option */
  readonly values?: readonly string[];
  /**
   * The option counts entries kept as they are (a window, sinks): with a fixed budget they must fit in it.
   * A function says when this holds for the method's other options (LAQ's window is used by some stage-1 presses only).
   */
  readonly kept?: boolean | ((o: Record<string, unknown>) => boolean);
  /**
   * A trained file the method reads (Judge Q's soft tokens, LookaheadKV's modules): the path used when the
   * value is '' (the default). Results keyed by the method include the file's identity, so a retrained file
   * does not keep old rows while the model's other results stay.
   */
  readonly file?: string;
  /** the value from a library value or a `key=value` string; throws a one-line error naming `where` */
  parse(value: unknown, where: string): T;
}

export type OptionSpecs = Record<string, OptionSpec>;

/** The values of a set of options, each of its declared type. */
export type OptionValues<O extends OptionSpecs> = { readonly [K in keyof O]: O[K] extends OptionSpec<infer T> ? T : never };

function bad(where: string, expected: string, value: unknown): never {
  throw new KvevictError(`${where} must be ${expected}, got ${typeof value === 'string' ? `"${value}"` : String(value)}`);
}

function asNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  // decimal notation only: Number() would also read "0x10" as 16
  if (typeof value === 'string' && /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(value)) return Number(value);
  return NaN;
}

type Common = { help: string; kept?: OptionSpec['kept'] };

export function intOption(o: Common & { default: number; min?: number; max?: number }): OptionSpec<number> {
  const range = o.min === undefined ? 'an integer' : o.max === undefined ? `an integer >= ${o.min}` : `an integer in [${o.min}, ${o.max}]`;
  return {
    type: 'int',
    default: o.default,
    help: o.help,
    kept: o.kept,
    parse(value, where) {
      const n = asNumber(value);
      if (!Number.isSafeInteger(n) || (o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) bad(where, range, value);
      return n;
    },
  };
}

/** A real number in [min, max] (maxOpen: max itself excluded). */
export function numberOption(o: Common & { default: number; min: number; max: number; maxOpen?: boolean }): OptionSpec<number> {
  const range = `in [${o.min}, ${o.max}${o.maxOpen ? ')' : ']'}`;
  return {
    type: 'number',
    default: o.default,
    help: o.help,
    kept: o.kept,
    parse(value, where) {
      const n = asNumber(value);
      if (!(n >= o.min && (o.maxOpen ? n < o.max : n <= o.max))) bad(where, range, value);
      return n;
    },
  };
}

export function choiceOption<V extends string>(values: readonly V[], o: Common & { default: V }): OptionSpec<V> {
  return {
    type: 'choice',
    default: o.default,
    help: o.help,
    values,
    kept: o.kept,
    parse(value, where) {
      if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) bad(where, `one of ${values.join(', ')}`, value);
      return value as V;
    },
  };
}

/** A switch, off unless given: `key=true` in a press string. */
export function booleanOption(o: Common): OptionSpec<boolean> {
  return {
    type: 'boolean',
    default: false,
    help: o.help,
    kept: o.kept,
    parse(value, where) {
      if (value === true || value === 'true') return true;
      if (value === false || value === 'false') return false;
      return bad(where, 'true or false', value);
    },
  };
}

/** A non-empty string (a file name); the default may be '' to mean "the method's own default". */
export function stringOption(o: Common & { default: string; what: string }): OptionSpec<string> {
  return {
    type: 'string',
    default: o.default,
    help: o.help,
    kept: o.kept,
    parse(value, where) {
      if (typeof value !== 'string' || value === '') bad(where, o.what, value);
      return value;
    },
  };
}

/** A trained file's path: '' (the default) stands for `defaultFile`. */
export function fileOption(o: { defaultFile: string; help: string }): OptionSpec<string> {
  return { ...stringOption({ default: '', what: 'a file name', help: o.help }), file: o.defaultFile };
}

/** The name an option has in a press string and on the command line: noWindow -> no-window. */
export function optionFlag(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The library's name of an option written either way: no-window -> noWindow. */
export function optionKey(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** A short description of an option's values for help text: "window=32", "pool=max|avg", "no-window". */
export function describeOption(key: string, spec: OptionSpec): string {
  const flag = optionFlag(key);
  if (spec.type === 'boolean') return `${flag}=true`;
  if (spec.type === 'choice') return `${flag}=${spec.values!.join('|')}`;
  if (spec.type === 'string') return `${flag}=FILE`;
  return `${flag}=${String(spec.default)}`;
}
