import type { ResultRow } from '../results.js';
import { summaryRows } from '../summary.js';

export interface ChartEntry {
  id: string;
  title: string;
  svg: string;
  /** file names next to index.html */
  svgFile: string;
  pngFile: string;
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The summary as an HTML table: one row per method, budget and mode, one column per task. */
export function summaryTableHtml(rows: readonly ResultRow[]): string {
  const { header: head, body } = summaryRows(rows);
  return `<table class="summary"><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${body
    .map((r) => `<tr>${r.map((c, i) => `<td${i === 1 || i >= 3 ? ' class="num"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

const STYLE = `
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 24px auto; max-width: 1280px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table.summary { border-collapse: collapse; font-size: 13px; }
table.summary th, table.summary td { border: 1px solid #ddd; padding: 3px 8px; }
table.summary th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure.chart { margin: 16px 0; overflow-x: auto; } figure.chart figcaption { font-size: 12px; color: #555; }
.controls { margin: 8px 0; font-size: 13px; } .controls label { margin-right: 12px; } #kv-stats { color: #555; }
.tokens { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; white-space: pre-wrap; word-break: break-all; border: 1px solid #ddd; padding: 8px; max-height: 480px; overflow-y: auto; line-height: 1.5; }
.meta { color: #555; font-size: 13px; }
`;

/** The whole page: one file, charts inline as SVG (each also beside it as .svg and .png). */
export function pageHtml(o: { title: string; meta: string; summary: string; charts: ChartEntry[]; keptView: string }): string {
  const charts = o.charts
    .map(
      (c) => `<figure class="chart" id="${escapeHtml(c.id)}" data-chart="${escapeHtml(c.id)}">
${c.svg}
<figcaption>${escapeHtml(c.title)} — <a href="${escapeHtml(c.svgFile)}">SVG</a> · <a href="${escapeHtml(c.pngFile)}">PNG</a></figcaption>
</figure>`,
    )
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(o.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(o.title)}</h1>
<p class="meta">${o.meta}</p>
<h2>Summary</h2>
${o.summary}
<h2>Charts</h2>
${charts}
${o.keptView}
</body>
</html>
`;
}
