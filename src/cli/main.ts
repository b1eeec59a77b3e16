import { KvevictError } from '../errors.js';

/**
 * The commands. Each lives in `./<name>.js` (one file per command: argument parsing and output only)
 * and exports `run(argv: string[]): Promise<number>` and `summary: string`.
 */
export const COMMANDS = [
  'generate',
  'inspect',
  'compress',
  'serve',
  'convert',
  'eval',
  'report',
  'demo',
  'pretrain',
  'train-judgeq',
  'train-lookaheadkv',
] as const;

interface CommandModule {
  run(argv: string[]): Promise<number>;
  summary: string;
}

async function load(name: string): Promise<CommandModule | null> {
  try {
    return (await import(`./${name}.js`)) as CommandModule;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(`${name}.js`)) return null;
    throw e;
  }
}

async function usage(): Promise<string> {
  const lines = ['usage: kvevict <command> [options]   (kvevict <command> --help for its options)', '', 'commands:'];
  for (const c of COMMANDS) {
    const m = await load(c);
    if (m) lines.push(`  ${c.padEnd(14)} ${m.summary}`);
  }
  return lines.join('\n');
}

/** Entry point of the CLI: returns the exit code. User errors print one line, no stack trace. */
export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write((await usage()) + '\n');
      return command === undefined ? 2 : 0;
    }
    if (!(COMMANDS as readonly string[]).includes(command))
      throw new KvevictError(`unknown command "${command}" (commands: ${COMMANDS.join(', ')})`);
    const mod = await load(command);
    if (!mod) throw new KvevictError(`command "${command}" is not available in this build`);
    return await mod.run(rest);
  } catch (e) {
    if (e instanceof KvevictError) {
      process.stderr.write(`kvevict: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
