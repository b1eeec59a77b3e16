import { pyStrip } from './python-text.js';

/**
 * RULER's prediction clean-up (scripts/eval/evaluate.py `postprocess_pred`): strip, turn control
 * characters into newlines, strip again.
 */
export function rulerPostprocess(prediction: string): string {
  // RULER's postprocessing replaces every control character with a newline
  // eslint-disable-next-line no-control-regex
  return pyStrip(pyStrip(prediction).replace(/[\x00-\x1f]/g, '\n'));
}

/**
 * RULER `string_match_all` for one sample, 0..1: the share of gold strings contained in the
 * prediction, case-insensitive.
 */
export function stringMatchAll(prediction: string, references: readonly string[]): number {
  if (references.length === 0) return 0;
  const p = prediction.toLowerCase();
  let hits = 0;
  for (const r of references) if (p.includes(r.toLowerCase())) hits++;
  return hits / references.length;
}

/** RULER `string_match_part` for one sample, 0..1: 1 when any gold string is contained in the prediction. */
export function stringMatchPart(prediction: string, references: readonly string[]): number {
  const p = prediction.toLowerCase();
  for (const r of references) if (p.includes(r.toLowerCase())) return 1;
  return 0;
}
