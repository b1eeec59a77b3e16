/** Lower-cased words (runs of letters and digits) of a text. */
export function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/**
 * Needle word recall, 0..1: the share of the needle's distinct words that appear in the answer
 * (the needle-in-a-haystack score when the answer is free text).
 */
export function needleRecall(prediction: string, needle: string): number {
  const wanted = new Set(wordsOf(needle));
  if (wanted.size === 0) return 0;
  const got = new Set(wordsOf(prediction));
  let hits = 0;
  for (const w of wanted) if (got.has(w)) hits++;
  return hits / wanted.size;
}
