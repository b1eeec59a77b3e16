/** A one-line progress bar on stderr: step, tokens/s, loss, time left. Redrawn in place on a TTY. */
export class ProgressBar {
  private lastDraw = 0;

  constructor(
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  update(step: number, fields: { tokensPerSecond: number; loss: number; secondsLeft: number; extra?: string }, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 1000) return;
    this.lastDraw = now;
    const width = 24,
      done = Math.round((width * step) / Math.max(1, this.total));
    const bar = '#'.repeat(done) + '.'.repeat(Math.max(0, width - done));
    const line = `[${bar}] ${step}/${this.total}  ${fields.tokensPerSecond.toFixed(0)} tok/s  loss ${fields.loss.toFixed(3)}  left ${formatDuration(fields.secondsLeft)}${fields.extra ? '  ' + fields.extra : ''}`;
    if (this.stream.isTTY) this.stream.write(`\r${line}\x1b[K`);
    else this.stream.write(line + '\n');
  }

  done(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(r).padStart(2, '0')}s`;
}
