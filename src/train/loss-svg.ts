/** One plotted series: points (x, y) and a colour. */
export interface Series {
  label: string;
  color: string;
  points: [number, number][];
  /** plot against the right axis (0..1), e.g. accuracy */
  rightAxis?: boolean;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

/** A small self-contained SVG line chart (loss on the left axis, accuracy 0..1 on the right). */
export function lineChartSvg(title: string, xLabel: string, series: Series[], width = 720, height = 360): string {
  const m = { l: 56, r: 56, t: 36, b: 44 };
  const W = width - m.l - m.r,
    H = height - m.t - m.b;
  const left = series.filter((s) => !s.rightAxis).flatMap((s) => s.points);
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const yMax = Math.max(1e-6, ...left.map((p) => p[1]));
  const yMin = Math.min(0, ...left.map((p) => p[1]));
  const px = (x: number) => m.l + (x / xMax) * W;
  const py = (y: number, right: boolean) => (right ? m.t + H - y * H : m.t + H - ((y - yMin) / (yMax - yMin)) * H);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  out.push(`<rect x="${m.l}" y="${m.t}" width="${W}" height="${H}" fill="none" stroke="#888"/>`);
  for (let i = 0; i <= 4; i++) {
    const y = yMin + ((yMax - yMin) * i) / 4;
    out.push(`<text x="${m.l - 6}" y="${py(y, false) + 4}" text-anchor="end">${y.toFixed(2)}</text>`);
    out.push(`<text x="${m.l + W + 6}" y="${py(i / 4, true) + 4}">${(i * 25).toFixed(0)}%</text>`);
    const x = (xMax * i) / 4;
    out.push(
      `<text x="${px(x)}" y="${m.t + H + 16}" text-anchor="middle">${x >= 1e6 ? (x / 1e6).toFixed(1) + 'M' : x >= 1e3 ? (x / 1e3).toFixed(0) + 'k' : x.toFixed(0)}</text>`,
    );
  }
  out.push(`<text x="${m.l + W / 2}" y="${height - 8}" text-anchor="middle">${esc(xLabel)}</text>`);
  series.forEach((s, i) => {
    if (s.points.length) {
      const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1], !!s.rightAxis).toFixed(1)}`).join('');
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
    }
    out.push(`<rect x="${m.l + 10}" y="${m.t + 8 + i * 15}" width="10" height="3" fill="${s.color}"/>`);
    out.push(`<text x="${m.l + 24}" y="${m.t + 13 + i * 15}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
