#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'cli', 'main.js');
if (!existsSync(main)) {
  process.stderr.write(`kvevict: ${main} is missing; run "npm ci" (or "npm run build") in the package folder first\n`);
  process.exit(2);
}
const { run } = await import(main);
process.exitCode = await run(process.argv.slice(2));
