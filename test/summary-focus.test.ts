import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatMarkdownFocus } from '../src/eval/summary.js';
import { resultRow } from './helpers/eval-fixtures.js';

const row = (press: string, budget: number, mode: 'query-aware' | 'query-agnostic', dataset: string, score: number, hit: number | null) =>
  resultRow({
    press,
    budget,
    mode,
    dataset,
    case: 'c',
    score,
    fidelity: { oracle_hit: hit, attention_recall: null, top1: null, kl: null },
  });

test('focus table: family means per budget and mode, full cache the same at every budget, other methods left out', () => {
  const rows = [
    row('snapkv', 64, 'query-aware', 'niah', 50, 40),
    row('snapkv', 64, 'query-aware', 'niah', 100, 60),
    row('snapkv', 64, 'query-aware', 'ruler:vt', 20, 10),
    row('snapkv', 128, 'query-aware', 'niah', 70, 80),
    row('laq', 64, 'query-aware', 'niah', 90, 90),
    row('laq', 64, 'query-agnostic', 'longbench:multi_news', 30, null),
    row('full', 64, 'query-aware', 'niah', 100, null),
    row('streaming', 64, 'query-aware', 'niah', 0, 0),
  ];
  const md = formatMarkdownFocus(rows, ['full', 'snapkv', 'laq'], [64, 128]).split('\n');
  assert.equal(
    md[0],
    '| method | mode | needle B=64 | needle B=128 | RULER B=64 | RULER B=128 | LongBench B=64 | LongBench B=128 | oracle hit % B=64 | oracle hit % B=128 |',
  );
  // by hand: snapkv needle @64 = (50 + 100) / 2, RULER @64 = 20, hit @64 = (40 + 60 + 10) / 3
  assert.ok(md.includes('| snapkv | query-aware | 75.0 | 70.0 | 20.0 | - | - | - | 36.7 | 80.0 |'), md.join('\n'));
  assert.ok(md.includes('| full | query-aware | 100.0 | 100.0 | - | - | - | - | - | - |'), md.join('\n'));
  assert.ok(md.includes('| laq | query-agnostic | - | - | - | - | 30.0 | - | - | - |'), md.join('\n'));
  assert.ok(!md.some((l) => l.startsWith('| streaming')));
  // modes in order, methods in the given order within a mode
  const order = md.slice(2).map((l) => l.split(' | ').slice(0, 2).join(' '));
  assert.deepEqual(order, ['| laq query-agnostic', '| full query-aware', '| snapkv query-aware', '| laq query-aware']);
});
