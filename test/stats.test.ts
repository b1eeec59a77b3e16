import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapCi, pairedDifference } from '../src/eval/stats.js';
import { formatMarkdownPaired, formatMarkdownPivot, jsonSummary, summarize, withoutFileOptions } from '../src/eval/summary.js';
import type { ResultRow } from '../src/eval/results.js';
import type { OptionValue } from '../src/eval/settings.js';
import { resultRow } from './helpers/eval-fixtures.js';
import { Rng } from '../src/util/rng.js';

test('bootstrap interval of a mean: near the normal approximation for many cases, seeded, exact for one case', () => {
  const rng = new Rng(3);
  for (const [n, p] of [
    [400, 0.3],
    [1000, 0.8],
  ]) {
    const xs: number[] = Array.from({ length: n }, () => (rng.next() < p ? 100 : 0));
    const mean = xs.reduce((a, b) => a + b, 0) / n;
    const se = Math.sqrt((mean * (100 - mean)) / n);
    const [lo, hi] = bootstrapCi(xs)!;
    assert.ok(lo < mean && mean < hi);
    // percentile bootstrap of a proportion against mean +- 1.96 se: within a tenth of the half-width
    assert.ok(Math.abs(lo - (mean - 1.96 * se)) < 0.15 * 1.96 * se, `n=${n}: low ${lo} vs ${mean - 1.96 * se}`);
    assert.ok(Math.abs(hi - (mean + 1.96 * se)) < 0.15 * 1.96 * se, `n=${n}: high ${hi} vs ${mean + 1.96 * se}`);
    assert.deepEqual(bootstrapCi(xs), [lo, hi], 'the same interval every time');
  }
  assert.deepEqual(bootstrapCi([42]), [42, 42]);
  assert.equal(bootstrapCi([]), null);
  assert.deepEqual(bootstrapCi([5, 5, 5, 5]), [5, 5]);
});

test('paired difference: only the cases both methods ran, with an interval that excludes 0 for a consistent gain', () => {
  const a = new Map<string, number>(),
    b = new Map<string, number>();
  for (let i = 0; i < 200; i++) {
    a.set(`c${i}`, i % 2 ? 100 : 50);
    b.set(`c${i}`, i % 2 ? 90 : 40);
  }
  a.set('only-a', 0);
  const d = pairedDifference(a, b)!;
  assert.equal(d.n, 200);
  assert.equal(d.mean, 10);
  assert.deepEqual(d.ci95, [10, 10]);
  b.set('c0', 80); // one case against: the interval widens but stays above 0
  const d2 = pairedDifference(a, b)!;
  assert.ok(d2.ci95![0] < 10 && d2.ci95![0] > 0 && d2.ci95![1] <= 10);
});

const row = (press: string, budget: number, c: string, score: number) => resultRow({ press, budget, case: c, score });

test('summaries and --json rows carry ci95 around the mean; the paired table compares against the baseline per budget', () => {
  const rows: ResultRow[] = [];
  for (let i = 0; i < 50; i++) {
    rows.push(row('snapkv', 64, `c${i}`, i % 4 === 0 ? 100 : 0), row('laq', 64, `c${i}`, i % 2 === 0 ? 100 : 0));
  }
  for (const s of summarize(rows)) assert.ok(s.ci95[0] <= s.score && s.score <= s.ci95[1], `${s.press}: ${s.ci95} around ${s.score}`);
  const j = jsonSummary(rows).rows.find((r) => r.press === 'laq')!;
  assert.equal(j.score, 50);
  assert.equal(j.ci95.length, 2);
  const table = formatMarkdownPaired(rows, 'snapkv', ['laq']);
  assert.match(table, /\| laq \| query-aware \| \+24\.0 \[\d+\.\d, \d+\.\d\] \(n=50\) \|/);
});

test('score charts: every point carries its interval, the mean over tasks a stratified one; the spec draws them as a band', async () => {
  const { scorePoints, MEAN_OVER_TASKS } = await import('../src/eval/report/data.js');
  const { scoreSpec } = await import('../src/eval/report/specs.js');
  const rows: ResultRow[] = [];
  for (let i = 0; i < 30; i++)
    rows.push(row('snapkv', 64, `c${i}`, i % 3 === 0 ? 100 : 0), { ...row('snapkv', 64, `d${i}`, 50), task: 'other', dataset: 'ruler:vt' });
  const points = scorePoints(rows, 'query-aware');
  const mean = points.find((p) => p.task === MEAN_OVER_TASKS)!;
  assert.ok(Math.abs(mean.score - (100 / 3 + 50) / 2) < 1e-9);
  for (const p of points) assert.ok(p.lo <= p.score && p.score <= p.hi, `${p.task}: [${p.lo}, ${p.hi}] around ${p.score}`);
  const niah = points.find((p) => p.task === 'niah')!;
  // the constant task adds no spread: the mean's interval is half as wide as the varying task's
  assert.ok(
    Math.abs(mean.hi - mean.lo - (niah.hi - niah.lo) / 2) < 0.25 * (niah.hi - niah.lo),
    `${mean.hi - mean.lo} vs ${(niah.hi - niah.lo) / 2}`,
  );
  const band = (
    scoreSpec(points, 'query-aware', ['snapkv']) as unknown as {
      spec: { layer: { mark: { type: string }; encoding: { y: { field: string }; y2?: { field: string } } }[] };
    }
  ).spec.layer[0];
  assert.equal(band.mark.type, 'area');
  assert.equal(band.encoding.y.field, 'lo');
  assert.equal(band.encoding.y2?.field, 'hi');
});

test("tables of one trained file: its path leaves the method's label, every other option stays", () => {
  const settings: [string, Record<string, OptionValue>][] = [
    ['judgeq', { soft: '/a/b/judgeq.safetensors' }],
    ['judgeq+laq', { lookahead: 4, soft: '/a/x.safetensors' }],
    ['lookaheadkv', { modules: 'm.safetensors', window: 8 }],
    ['snapkv', { window: 64 }],
    ['full', {}],
  ];
  const rows = settings.map(([press, options], i) => resultRow({ press, options, budget: 128, case: `c${i}`, score: 50 }));
  const table = formatMarkdownPivot(withoutFileOptions(rows), 'score');
  for (const label of ['| judgeq |', '| judgeq+laq(lookahead=4) |', '| lookaheadkv(window=8) |', '| snapkv(window=64) |', '| full |'])
    assert.ok(table.includes(label), `${label} in\n${table}`);
  assert.ok(!table.includes('safetensors'), table);
  assert.ok(formatMarkdownPivot(rows, 'score').includes('judgeq(soft=/a/b/judgeq.safetensors)'));
});
