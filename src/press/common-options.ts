/** Options several methods share, declared once so that they mean (and default to) the same everywhere. */
import { choiceOption, intOption } from './option-spec.js';

export const window = intOption({
  default: 32,
  min: 1,
  kept: true,
  help: 'observation window w: the last prompt tokens that score and are kept',
});
export const kernel = intOption({ default: 7, min: 1, help: 'pooling kernel' });
export const pool = choiceOption(['max', 'avg'] as const, { default: 'max', help: 'pooling of the scores' });
export const gqa = choiceOption(['mean', 'max'] as const, { default: 'mean', help: 'reduction over a GQA group' });
export const sinks = intOption({ default: 4, min: 0, kept: true, help: 'attention sinks: the first positions, always kept' });

/** SnapKV's pooled attention scoring, shared by the methods built on it. */
export const pooled = { window, kernel, pool, gqa };
