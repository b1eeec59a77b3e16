import { SUMMARIES, runTrainer } from './train-rows.js';

export const summary = SUMMARIES.judgeq;
export const run = (argv: string[]): Promise<number> => runTrainer('judgeq', argv);
