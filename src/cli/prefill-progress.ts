import { formatDuration } from '../train/progress.js';

/**
 * A prefill progress callback for stderr: silent for the first `quietSeconds` (short prompts say nothing), then
 * at most once a second "prefill DONE/TOTAL tokens, R tok/s, T left"; the line is redrawn on a TTY.
 */
export function prefillProgress(stream: NodeJS.WriteStream = process.stderr, quietSeconds = 3): (done: number, total: number) => void {
  const t0 = performance.now();
  let last = 0;
  return (done, total) => {
    const now = performance.now();
    const seconds = (now - t0) / 1000;
    if (seconds < quietSeconds || (now - last < 1000 && done < total)) return;
    last = now;
    const rate = done / seconds;
    const line = `prefill ${done}/${total} tokens, ${rate.toFixed(0)} tok/s, ${formatDuration((total - done) / rate)} left`;
    if (stream.isTTY) stream.write(`\r${line}\x1b[K${done >= total ? '\n' : ''}`);
    else stream.write(line + '\n');
  };
}
