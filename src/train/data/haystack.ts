import { Rng } from '../../util/rng.js';

/** A piece of `source` of about `chars` characters that starts at a sentence start. */
export function haystackSlice(rng: Rng, source: string, chars: number): string {
  if (chars <= 0) return '';
  const max = Math.max(0, source.length - chars - 400);
  let start = rng.int(max + 1);
  const dot = source.indexOf('. ', start);
  if (dot >= 0 && dot - start < 300) start = dot + 2;
  let text = source.slice(start, start + chars);
  while (text.length < chars) text += ' ' + source.slice(0, chars - text.length);
  return text;
}

/** Sentence boundaries of `text`: offsets just after ". ", "? ", "! " or a newline. */
export function sentenceBoundaries(text: string): number[] {
  const out = [0];
  for (let i = 1; i < text.length; i++) {
    const c = text[i - 1];
    if (c === '\n' || ((c === ' ' || c === '\t') && (text[i - 2] === '.' || text[i - 2] === '?' || text[i - 2] === '!'))) out.push(i);
  }
  out.push(text.length);
  return out;
}

/**
 * Insert each sentence at the sentence boundary nearest to its depth (0 = start, 1 = end of `text`),
 * keeping the given order for equal depths.
 */
export function insertAtDepths(text: string, items: { sentence: string; depth: number }[]): string {
  const bounds = sentenceBoundaries(text);
  const placed = items.map((it, i) => {
    const target = it.depth * text.length;
    let best = bounds[0];
    for (const b of bounds) if (Math.abs(b - target) < Math.abs(best - target)) best = b;
    return { at: best, sentence: it.sentence, i };
  });
  placed.sort((a, b) => a.at - b.at || a.i - b.i);
  let out = '',
    prev = 0;
  for (const p of placed) {
    out += text.slice(prev, p.at);
    const sep = p.at > 0 && !/\s$/.test(out) ? ' ' : '';
    out += `${sep}${p.sentence} `;
    prev = p.at;
  }
  return out + text.slice(prev);
}

/** RULER's repetitive filler for passkey and variable tracking. */
export const NOISE = 'The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ';

export function noiseSlice(chars: number): string {
  return NOISE.repeat(Math.ceil(chars / NOISE.length) + 1).slice(0, Math.max(0, chars));
}
