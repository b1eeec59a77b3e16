import { SUMMARIES, runTrainer } from './train-rows.js';

export const summary = SUMMARIES.lookaheadkv;
export const run = (argv: string[]): Promise<number> => runTrainer('lookaheadkv', argv);
