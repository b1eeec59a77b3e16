/** Something that takes text: process.stderr, or a buffer in tests. */
export interface TextSink {
  write(s: string): unknown;
  isTTY?: boolean;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/**
 * A progress bar with the time left, estimated from the rows computed in this run (resumed rows are
 * counted as done but not timed). On a terminal it redraws one line; elsewhere it prints a line at most
 * every `everyMs` and at the end.
 */
export class Progress {
  private done = 0;
  private computed = 0;
  private computedMs = 0;
  private lastPrint = -Infinity;
  private readonly start: number;

  constructor(
    private readonly total: number,
    private readonly sink: TextSink,
    private readonly now: () => number = () => performance.now(),
    private readonly everyMs = 10000,
  ) {
    this.start = now();
  }

  /** Rows found finished in the results file. */
  skip(n: number): void {
    this.done += n;
  }

  /** One row computed in `ms`. */
  tick(ms: number, label: string): void {
    this.done++;
    this.computed++;
    this.computedMs += ms;
    this.draw(label);
  }

  /** Time left in ms (NaN before the first computed row). */
  remainingMs(): number {
    if (this.computed === 0) return NaN;
    return (this.computedMs / this.computed) * (this.total - this.done);
  }

  line(label: string): string {
    const width = 24;
    const frac = this.total === 0 ? 1 : this.done / this.total;
    const fill = Math.round(frac * width);
    const bar = '='.repeat(Math.max(0, fill - 1)) + (fill > 0 ? (frac >= 1 ? '=' : '>') : '') + ' '.repeat(width - fill);
    const left =
      this.done >= this.total ? `done in ${formatDuration(this.now() - this.start)}` : `${formatDuration(this.remainingMs())} left`;
    return `[${bar}] ${this.done}/${this.total} ${left}  ${label}`;
  }

  private draw(label: string): void {
    const t = this.now();
    const last = this.done >= this.total;
    if (this.sink.isTTY) {
      this.sink.write(`\r\x1b[2K${this.line(label)}${last ? '\n' : ''}`);
    } else if (last || t - this.lastPrint >= this.everyMs) {
      this.sink.write(this.line(label) + '\n');
      this.lastPrint = t;
    }
  }
}
