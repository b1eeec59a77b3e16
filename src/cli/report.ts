import { KvevictError } from '../errors.js';
import { writeReport } from '../eval/report/index.js';
import { formatHelp, parseArgs, requireString, checkOutputPath, type OptionSpecs } from './args.js';

export const summary = 'write an HTML report (SVG and PNG charts) of an eval results folder';

const specs: OptionSpecs = {
  out: { type: 'string', help: 'report folder: index.html plus each chart as .svg and .png' },
  help: { type: 'boolean', help: 'show this help' },
};

const USAGE = 'kvevict report DIR --out DIR';

export async function run(argv: string[]): Promise<number> {
  const { options, positionals } = parseArgs(argv, specs, 'report');
  if (options.help) {
    process.stdout.write(formatHelp(USAGE, specs) + '\n');
    return 0;
  }
  if (positionals.length !== 1) throw new KvevictError(`report: give one results folder (usage: ${USAGE})`);
  const out = checkOutputPath(requireString(options, 'out', 'report'), 'folder', 'report: --out');
  const r = await writeReport(positionals[0], out);
  process.stdout.write(`${r.html}\n${r.charts.length} charts (SVG and PNG) in ${out}\n`);
  return 0;
}
