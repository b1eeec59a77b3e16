/** Plain-text tables for benchmark output: right-aligned numbers, one header row. */
export type Cell = string | number | null;

/** A cell of null (not measured) prints as a dash. */
export function formatTable(title: string, header: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map((c) => (c === null ? '-' : typeof c === 'number' ? formatNumber(c) : c)));
  const widths = header.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [title, line(header), ...text.map(line)].join('\n') + '\n';
}

/** Three significant digits, without exponent notation for ordinary magnitudes. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}
