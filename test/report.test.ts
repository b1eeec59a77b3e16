import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KvevictError } from '../src/errors.js';
import { MEAN_OVER_TASKS, fidelityPoints, keptBins, loadReportData, needleCells, scorePoints } from '../src/eval/report/data.js';
import { encodeBits } from '../src/eval/report/kept-view.js';
import { writeReport } from '../src/eval/report/index.js';
import type { KeptFile } from '../src/eval/runner.js';
import { tempDir, writeSyntheticResults } from './helpers/eval-fixtures.js';

function pngSize(buf: Buffer): { width: number; height: number } {
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.equal(buf.subarray(12, 16).toString('latin1'), 'IHDR');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

test('report data: means per method, budget and task, needle cells, fidelity, kept bins', () => {
  const dir = tempDir();
  writeSyntheticResults(dir);
  const data = loadReportData(dir);
  assert.deepEqual(data.modes, ['query-aware', 'query-agnostic']);
  assert.deepEqual(data.tasks, ['niah', 'ruler:vt']);
  const sp = scorePoints(data.rows, 'query-aware');
  const at = (method: string, budget: number, task: string) =>
    sp.find((p) => p.method === method && p.budget === budget && p.task === task)!;
  assert.equal(at('snapkv', 64, 'niah').score, 50);
  assert.equal(at('snapkv', 64, 'niah').n, 6);
  assert.equal(at('snapkv', 64, 'ruler:vt').score, 40);
  // mean over tasks weighs each task once: (50 + 40) / 2
  assert.equal(at('snapkv', 64, MEAN_OVER_TASKS).score, 45);
  assert.equal(at('full', 128, MEAN_OVER_TASKS).score, 90);
  assert.equal(at('full', 128, MEAN_OVER_TASKS).n, 8);
  const cells = needleCells(data.rows, 'query-agnostic');
  assert.equal(cells.length, 3 * 2 * 2 * 3);
  assert.equal(cells.find((c) => c.method === 'snapkv' && c.budget === 64 && c.length === 200 && c.depth === 0)!.score, 50);
  const fp = fidelityPoints(data.rows, 'query-aware');
  assert.ok(!fp.some((p) => p.method === 'full'));
  assert.equal(fp.find((p) => p.method === 'snapkv' && p.budget === 64 && p.measure === 'oracle hit rate')!.value, 32);
  assert.equal(fp.find((p) => p.method === 'snapkv' && p.budget === 128 && p.measure === 'attention recall')!.value, 56);
  // 6 tokens, 1 layer x 2 heads, 3 bins of 2 positions: head 0 keeps {0, 1}, head 1 keeps {0, 5}
  const kf: KeptFile = {
    task: 't',
    case: 'c',
    mode: 'query-aware',
    tokens: ['a', 'b', 'c', 'd', 'e', 'f'],
    layers: 1,
    kvHeads: 2,
    settings: [
      {
        press: 'snapkv',
        options: {},
        budget: 2,
        kept: [
          [
            [0, 1],
            [0, 5],
          ],
        ],
      },
    ],
  };
  assert.deepEqual(
    keptBins(kf, 3).map((b) => b.share),
    [3 / 4, 0, 1 / 4],
  );
  assert.deepEqual(
    keptBins(kf, 3).map((b) => [b.start, b.end]),
    [
      [0, 1],
      [2, 3],
      [4, 5],
    ],
  );
  // bitset: positions 0, 3, 9 of 10 -> bytes 0b00001001, 0b00000010
  assert.deepEqual([...Buffer.from(encodeBits([0, 3, 9], 10), 'base64')], [9, 2]);
});

test('report: self-contained HTML, each chart as SVG (Vega) and PNG (resvg)', async () => {
  const dir = tempDir();
  writeSyntheticResults(dir);
  const out = join(dir, 'report');
  const r = await writeReport(dir, out);
  const ids = r.charts.map((c) => c.id).sort();
  assert.deepEqual(ids, [
    'fidelity-query-agnostic',
    'fidelity-query-aware',
    'kept-0',
    'needle-query-agnostic',
    'needle-query-aware',
    'score-query-agnostic',
    'score-query-aware',
  ]);
  for (const c of r.charts) {
    const svg = readFileSync(c.svg, 'utf8');
    assert.ok(svg.startsWith('<svg'), c.id);
    assert.match(svg, /class="mark-[a-z]+ role-mark/, `${c.id} has marks`);
    const { width, height } = pngSize(readFileSync(c.png));
    assert.ok(width > 200 && height > 100, `${c.id} png ${width}x${height}`);
  }
  const html = readFileSync(r.html, 'utf8');
  assert.equal((html.match(/<figure class="chart"/g) ?? []).length, 7);
  assert.ok(!/<script[^>]+src=|<link[^>]+href=/.test(html), 'no external scripts or styles');
  assert.match(html, /<td>snapkv<\/td><td class="num">64<\/td><td>query-aware<\/td><td class="num">8<\/td><td class="num">47\.5<\/td>/);
  assert.match(html, /id="kv-data"/);
  // the spec beside each chart holds the plotted means
  const spec = JSON.parse(readFileSync(join(out, 'score-query-aware.vl.json'), 'utf8')) as {
    data: { values: { method: string; budget: number; task: string; score: number }[] };
  };
  assert.equal(spec.data.values.find((v) => v.method === 'snapkv' && v.budget === 64 && v.task === MEAN_OVER_TASKS)!.score, 45);
  assert.ok(readdirSync(out).includes('index.html'));
  await assert.rejects(
    writeReport(join(dir, 'nothing'), join(dir, 'r2')),
    (e: unknown) => e instanceof KvevictError && /no results\.jsonl here/.test(e.message),
  );
});
