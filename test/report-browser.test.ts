import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeReport } from '../src/eval/report/index.js';
import { tempDir, writeSyntheticResults } from './helpers/eval-fixtures.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

test(
  'report page in headless Chromium: no console error, every chart has its marks, kept-token view works',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium)`, timeout: 120000 },
  async () => {
    const { chromium } = await import('playwright-core');
    const dir = tempDir();
    writeSyntheticResults(dir);
    const out = join(dir, 'report');
    const r = await writeReport(dir, out);
    const context = await chromium.launchPersistentContext(tempDir('kvevict-chromium-'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
    });
    try {
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()}`));
      await page.goto(pathToFileURL(r.html).href, { waitUntil: 'load' });
      await page.screenshot({ path: join(out, 'screenshot.png'), fullPage: true });

      // every chart: an inline SVG whose mark groups hold drawn items
      const charts = await page.$$eval('figure.chart', (figs) =>
        figs.map((f) => {
          const svg = f.querySelector('svg');
          const marks = svg ? Array.from(svg.querySelectorAll('g.role-mark')) : [];
          const items = marks.reduce((a, g) => a + g.querySelectorAll('path, rect, line, circle').length, 0);
          const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
          return { id: f.id, items, width: box.width, height: box.height };
        }),
      );
      assert.equal(charts.length, r.charts.length);
      for (const c of charts) {
        assert.ok(c.items > 0, `chart ${c.id} has no marks`);
        assert.ok(c.width > 100 && c.height > 50, `chart ${c.id} is drawn (${c.width}x${c.height})`);
      }
      // the heat map draws one cell per method x budget x length x depth: 3 x 2 x 2 x 3
      assert.equal(charts.find((c) => c.id === 'needle-query-aware')!.items >= 36, true);

      // kept view: snapkv @64, layer 0, head 0 keeps 0, 2, ..., 126 of 300 tokens
      const kept = () => page.$$eval('#kv-tokens span.kept', (s) => s.length);
      assert.equal(await page.$$eval('#kv-tokens span', (s) => s.length), 300);
      assert.equal(await kept(), 64);
      await page.selectOption('#kv-layer', 'all');
      await page.selectOption('#kv-head', 'all');
      // union over layers and heads: shifts 0, 1, 2 cover 0..128
      assert.equal(await kept(), 129);
      await page.selectOption('#kv-setting', '1');
      assert.equal(await kept(), 64);
      assert.match((await page.textContent('#kv-stats')) ?? '', /64 of 300 tokens kept/);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  },
);
