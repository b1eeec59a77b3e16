import { KvevictError } from '../errors.js';

/** Entry point of the CLI: returns the exit code. Commands live one per file beside this one. */
export async function run(argv: string[]): Promise<number> {
  const [command] = argv;
  try {
    switch (command) {
      default:
        throw new KvevictError(`unknown command ${JSON.stringify(command ?? '')} (try: generate)`);
    }
  } catch (e) {
    if (e instanceof KvevictError) {
      process.stderr.write(`kvevict: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
