/** What chunked compression (of a prompt, or of generated tokens) needs of a press, and the window it carries. */
import { KvevictError } from '../errors.js';
import type { Captured, Press } from '../press/types.js';

/** Refuse, in one line, a press that cannot compress a prompt `chunk` tokens at a time. */
export function checkChunkable(press: Press, chunk: number): void {
  if (!Number.isInteger(chunk) || chunk < 1) throw new KvevictError(`--chunk-compress must be an integer >= 1, got ${chunk}`);
  if (press.wholePrompt)
    throw new KvevictError(`${press.name} cannot compress a prompt chunk by chunk (--chunk-compress): ${press.wholePrompt}`);
  if (press.budget && 'ratio' in press.budget)
    throw new KvevictError(`--chunk-compress needs --budget, not --ratio (a ratio's budget depends on the whole prompt)`);
  const w = press.capture(Number.MAX_SAFE_INTEGER).windowQueries ?? 0;
  if (chunk < w)
    throw new KvevictError(
      `--chunk-compress ${chunk} is smaller than ${press.name}'s window ${w}: each chunk must hold the window that scores it`,
    );
}

/**
 * A chunk shorter than the window (the prompt's last) records only its own rows: the window's earlier rows,
 * at positions below `start`, come from the previous chunk's recording.
 */
export function carryWindow(now: Captured, before: Captured | null, start: number, rowSize: number): void {
  if (!now.windowQueries || now.windowPositions[0] >= start) return;
  if (!before?.windowQueries) throw new Error('internal error: a window reaches into a chunk that recorded none');
  const from = before.windowPositions;
  now.windowQueries.forEach((q, l) => {
    for (let i = 0; i < now.windowPositions.length && now.windowPositions[i] < start; i++) {
      const j = now.windowPositions[i] - from[0];
      if (j < 0 || j >= from.length) throw new Error(`internal error: window row ${now.windowPositions[i]} was not recorded`);
      q.set(before.windowQueries![l].subarray(j * rowSize, (j + 1) * rowSize), i * rowSize);
    }
  });
}
