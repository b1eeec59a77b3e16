import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_SOFT_FILE } from '../press/methods/judgeq.js';
import { DEFAULT_LOOKAHEAD_FILE } from '../press/methods/lookaheadkv.js';
import { PRESS_NAMES, modelFileFor, withModelFiles } from '../press/registry.js';
import { KEPT_DIR } from './runner.js';
import { RESULTS_FILE, RUN_FILE } from './results.js';
import type { EvalJob } from './setup.js';
import { makeGrid, parsePress, type Mode, type Setting } from './settings.js';

/** The methods the demo compares first; every other method that can run follows. */
export const DEMO_LEAD = ['full', 'streaming', 'snapkv', 'pyramidkv', 'laq'];

/** Every method the demo runs: Judge Q and LookaheadKV only when the embedded model's trained files exist. */
export function demoPresses(softFile = DEFAULT_SOFT_FILE, lookaheadFile = DEFAULT_LOOKAHEAD_FILE): string[] {
  const hasSoft = existsSync(softFile),
    hasLookahead = existsSync(lookaheadFile);
  const trained = (n: string) => (n.startsWith('judgeq') ? hasSoft : n === 'lookaheadkv' ? hasLookahead : true);
  const rest = PRESS_NAMES.filter((n) => !DEMO_LEAD.includes(n) && trained(n));
  return [...DEMO_LEAD, ...rest];
}

/** demoPresses for a model: the trained files it checks are the model folder's own (modelFileFor). */
export function demoPressesFor(modelPath: string): string[] {
  return demoPresses(modelFileFor(DEFAULT_SOFT_FILE, modelPath), modelFileFor(DEFAULT_LOOKAHEAD_FILE, modelPath));
}

export interface DemoPlan {
  datasets: string[];
  grid: Setting[];
  samples: number;
  lengths: { niah: number[]; ruler: number[] };
  depths: number[];
}

/**
 * The demo's small grid: a needle grid and two RULER tasks, every method at two budgets, one mode (trained files
 * from `modelPath`'s folder where it has its own).
 */
export function demoPlan(
  budgets: number[] = [64, 128],
  modes: Mode[] = ['query-aware'],
  presses: string[] = demoPresses(),
  modelPath?: string,
): DemoPlan {
  return {
    datasets: ['niah', 'ruler:niah_single_2', 'ruler:vt'],
    grid: makeGrid(
      presses.map((p) => withModelFiles(parsePress(p), modelPath)),
      budgets,
      modes,
    ),
    samples: 3,
    lengths: { niah: [1024, 2048], ruler: [2048] },
    depths: [0, 50, 100],
  };
}

/** The demo's eval jobs (one per length setting: needle lengths differ from RULER's). */
export function demoJobs(plan: DemoPlan, outDir: string, base: Pick<EvalJob, 'progress' | 'log' | 'modelDir' | 'seed'>): EvalJob[] {
  return [
    { ...base, datasets: ['niah'], grid: plan.grid, outDir, lengths: plan.lengths.niah, depths: plan.depths },
    {
      ...base,
      datasets: plan.datasets.filter((d) => d !== 'niah'),
      grid: plan.grid,
      outDir,
      lengths: plan.lengths.ruler,
      samples: plan.samples,
    },
  ];
}

/** Remove a previous demo's results so the demo always reflects the current model. */
export function clearResults(outDir: string): void {
  for (const f of [RESULTS_FILE, RUN_FILE, KEPT_DIR]) rmSync(join(outDir, f), { recursive: true, force: true });
}
