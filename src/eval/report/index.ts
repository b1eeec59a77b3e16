import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { fidelityPoints, keptBins, labelOf, loadReportData, needleCells, scorePoints } from './data.js';
import { keptViewCase, keptViewHtml } from './kept-view.js';
import { escapeHtml, pageHtml, summaryTableHtml, type ChartEntry } from './page.js';
import type { KeptFile } from '../runner.js';
import { renderSvg, svgToPng } from './render.js';
import { fidelitySpec, keptSpec, needleSpec, scoreSpec } from './specs.js';

export interface ReportResult {
  html: string;
  charts: { id: string; svg: string; png: string }[];
}

/** The cases whose kept positions the report shows: one per mode, a needle case when there is one. */
export function pickKeptFiles(kept: readonly KeptFile[]): KeptFile[] {
  const out: KeptFile[] = [];
  for (const mode of [...new Set(kept.map((k) => k.mode))].sort()) {
    const mine = kept.filter((k) => k.mode === mode);
    out.push(mine.find((k) => k.task === 'niah') ?? mine[0]);
  }
  return out;
}

/** Methods in a stable order: the full cache first, then by name. */
function methodOrder(labels: Iterable<string>): string[] {
  return [...new Set(labels)].sort((a, b) => (a === 'full' ? -1 : b === 'full' ? 1 : a.localeCompare(b)));
}

/**
 * Write the report of a results folder into `outDir`: index.html (self-contained, charts inline as SVG),
 * and every chart as NAME.svg and NAME.png beside it. Charts are Vega-Lite specs rendered by Vega in Node;
 * PNGs come from resvg.
 */
export async function writeReport(resultsDir: string, outDir: string): Promise<ReportResult> {
  const data = loadReportData(resultsDir);
  const methods = methodOrder(data.rows.map(labelOf));
  const specs: { id: string; title: string; spec: TopLevelSpec }[] = [];
  for (const mode of data.modes) {
    const sp = scorePoints(data.rows, mode);
    if (sp.length)
      specs.push({
        id: `score-${mode}`,
        title: `Score against budget per method, per task and mean over tasks (${mode})`,
        spec: scoreSpec(sp, mode, methods),
      });
    const cells = needleCells(data.rows, mode);
    if (cells.length)
      specs.push({
        id: `needle-${mode}`,
        title: `Needle in a haystack: depth x length heat maps per method (${mode})`,
        spec: needleSpec(cells, mode, methods),
      });
    const fp = fidelityPoints(data.rows, mode);
    if (fp.length)
      specs.push({
        id: `fidelity-${mode}`,
        title: `Oracle hit rate and attention recall per method (${mode})`,
        spec: fidelitySpec(fp, mode, methods),
      });
  }
  const kept = pickKeptFiles(data.kept);
  kept.forEach((kf, i) => {
    const bins = keptBins(kf, 96);
    if (bins.length) {
      specs.push({
        id: `kept-${i}`,
        title: `Kept positions along the prompt, ${kf.task} / ${kf.case} (${kf.mode})`,
        spec: keptSpec(
          bins,
          `Share of layers x heads keeping each stretch of the prompt: ${kf.task} / ${kf.case} (${kf.mode})`,
          kf.tokens.length,
        ),
      });
    }
  });

  mkdirSync(outDir, { recursive: true });
  const charts: ChartEntry[] = [];
  const files: ReportResult['charts'] = [];
  for (const s of specs) {
    const svg = await renderSvg(s.spec);
    const svgFile = `${s.id}.svg`;
    const pngFile = `${s.id}.png`;
    writeFileSync(join(outDir, svgFile), svg);
    writeFileSync(join(outDir, pngFile), svgToPng(svg));
    writeFileSync(join(outDir, `${s.id}.vl.json`), JSON.stringify(s.spec));
    charts.push({ id: s.id, title: s.title, svg, svgFile, pngFile });
    files.push({ id: s.id, svg: join(outDir, svgFile), png: join(outDir, pngFile) });
  }
  const n = data.rows.length;
  const meta = `model ${data.models.map(escapeHtml).join(', ')} · ${n} result rows · tasks: ${data.tasks.map(escapeHtml).join(', ')} · modes: ${data.modes.join(', ')} · scores 0–100; fidelity against the full cache (oracle hit rate, attention recall, top-1 agreement in %, KL in nats).`;
  const html = pageHtml({
    title: 'kvevict evaluation report',
    meta,
    summary: summaryTableHtml(data.rows),
    charts,
    keptView: keptViewHtml(kept.map(keptViewCase)),
  });
  const htmlFile = join(outDir, 'index.html');
  writeFileSync(htmlFile, html);
  return { html: htmlFile, charts: files };
}
