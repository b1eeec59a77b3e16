import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvevictError } from '../src/errors.js';
import type { EvalCase, LoadedDataset } from '../src/eval/case.js';
import type { CompressedRun, EngineSession, EvalEngine, FullRun } from '../src/eval/engine.js';
import { loadPlain } from '../src/eval/datasets/plain.js';
import { Progress, formatDuration } from '../src/eval/progress.js';
import type { PreparedPrompt } from '../src/eval/prompt.js';
import { LOCK_FILE, readRows, readRowsWithProblems } from '../src/eval/results.js';
import { keptCaseIds, runGrid, type KeptFile } from '../src/eval/runner.js';
import {
  makeGrid,
  parseBudgets,
  parsePress,
  pressLabel,
  rowKey,
  settingDigest,
  type Mode,
  type PressSpec,
  type Setting,
} from '../src/eval/settings.js';
import { formatMarkdownTable, formatTable, jsonSummary, summarize } from '../src/eval/summary.js';
import { byteTokenizer, tempDir, writeLines } from './helpers/eval-fixtures.js';

/** A model stand-in: answers right with the full cache or a budget of 128+, keeps the first B positions. */
class FakeEngine implements EvalEngine {
  readonly model: string;
  readonly maxContext = 1000;
  readonly tokenizer = byteTokenizer();
  fullCalls = 0;
  compressedCalls = 0;
  constructor(model = 'fake') {
    this.model = model;
  }
  checkSetting(p: PressSpec, budget: number): void {
    if (p.name === 'bogus') throw new KvevictError('unknown press "bogus"');
    if (budget < 8) throw new KvevictError('--budget too small');
  }
  open(prompt: PreparedPrompt, c: EvalCase): EngineSession {
    const L = prompt.contextTokens.length + prompt.questionTokens.length;
    const logits = [Float32Array.from([0, 1, 2]), Float32Array.from([2, 1, 0])];
    const bump = (what: 'fullCalls' | 'compressedCalls'): void => {
      this[what]++;
    };
    return {
      async full(): Promise<FullRun> {
        bump('fullCalls');
        return {
          tokens: [1, 2],
          text: c.answers[0],
          logits,
          // one head of size 1 with zero keys: attention is uniform over the prompt
          trace: {
            layers: 1,
            heads: 1,
            kvHeads: 1,
            headDim: 1,
            length: L,
            keys: [[new Float32Array(L)]],
            queries: [[Float32Array.of(1)], [Float32Array.of(1)]],
          },
          cacheBytes: 1000,
          timings: { prefillMs: 1, compressMs: 0, decodeMs: 1 },
        };
      },
      async compressed(press: PressSpec, budget: number, mode: Mode): Promise<CompressedRun> {
        bump('compressedCalls');
        const Lc = mode === 'query-aware' ? L : prompt.contextTokens.length;
        return {
          tokens: [3],
          text: budget >= 128 ? `it is ${c.answers[0]}` : 'no idea',
          kept: [[Int32Array.from({ length: Math.min(budget, Lc) }, (_, i) => i)]],
          forcedLogits: logits.map((x) => x.slice()),
          cacheBytes: budget,
          timings: { prefillMs: 1, compressMs: 1, decodeMs: 1 },
        };
      },
      close() {},
    };
  }
}

function sink(isTTY = false): { write(s: string): boolean; text: string; isTTY: boolean } {
  return {
    text: '',
    isTTY,
    write(s: string) {
      this.text += s;
      return true;
    },
  };
}

function dataset(dir: string): { file: string; ds: LoadedDataset } {
  const ctx = (i: number) => `Fact ${i}: `.repeat(40) + `the answer is gold${i}.`;
  const file = writeLines(dir, 'cases.jsonl', [
    JSON.stringify({ id: 'a', context: ctx(0), question: 'What is the answer?', answers: ['gold0'] }),
    '{"id": "broken"',
    JSON.stringify({ id: 'b', context: ctx(1), question: 'What is the answer?', answers: ['gold1'] }),
    JSON.stringify({ id: 'c', context: ctx(2), question: 'What is the answer?', answers: ['gold2'] }),
  ]);
  return { file, ds: loadPlain(file) };
}

const presses = ['full', 'snapkv'].map((p) => parsePress(p));

test('grid runner: rows, shared full run, scores, fidelity, kept plans, problems', async () => {
  const dir = tempDir();
  const out = join(dir, 'out');
  const { ds } = dataset(dir);
  const engine = new FakeEngine();
  const grid = makeGrid(presses, [64, 128], ['query-aware', 'query-agnostic']);
  const log = sink();
  const progress = sink();
  const res = await runGrid({ engine, dataset: ds, grid, outDir: out, progress, log });
  assert.equal(res.computed, 24);
  assert.equal(res.skipped, 0);
  assert.equal(engine.fullCalls, 3, 'one full run per case');
  assert.equal(engine.compressedCalls, 12);
  assert.match(log.text, /cases\.jsonl:2: invalid JSON.*\(skipped\)/);
  const rows = readRows(out);
  assert.equal(rows.length, 24);
  assert.equal(readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').length, 24);
  const row = rows.find((r) => r.case === 'a' && r.press === 'snapkv' && r.budget === 64 && r.mode === 'query-aware')!;
  assert.equal(row.score, 0);
  assert.equal(row.prediction, 'no idea');
  // uniform attention over the prompt: recall = kept / compressible
  assert.ok(Math.abs(row.fidelity.attention_recall! - (100 * 64) / row.compressible_tokens) < 1e-9);
  assert.equal(row.fidelity.top1, 100);
  assert.equal(row.fidelity.kl, 0);
  assert.equal(
    row.key,
    rowKey(
      ds.cases.find((c) => c.id === 'a')!,
      { name: 'snapkv', options: {} },
      64,
      'query-aware',
      'fake',
    ),
  );
  const agn = rows.find((r) => r.case === 'a' && r.press === 'snapkv' && r.budget === 64 && r.mode === 'query-agnostic')!;
  assert.ok(agn.compressible_tokens < row.compressible_tokens);
  assert.ok(Math.abs(agn.fidelity.attention_recall! - (100 * 64) / agn.compressible_tokens) < 1e-9);
  assert.equal(rows.find((r) => r.press === 'snapkv' && r.budget === 128)!.score, 100);
  assert.equal(rows.find((r) => r.press === 'full')!.fidelity.oracle_hit, 100);
  assert.deepEqual(
    jsonSummary(rows).rows.filter((r) => r.mode === 'query-aware'),
    [
      { press: 'full', budget: 64, mode: 'query-aware', score: 100, n: 3, ci95: [100, 100] },
      { press: 'full', budget: 128, mode: 'query-aware', score: 100, n: 3, ci95: [100, 100] },
      { press: 'snapkv', budget: 64, mode: 'query-aware', score: 0, n: 3, ci95: [0, 0] },
      { press: 'snapkv', budget: 128, mode: 'query-aware', score: 100, n: 3, ci95: [100, 100] },
    ],
  );
  const kept = JSON.parse(readFileSync(join(out, 'kept', 'plain_cases__a__query-aware.json'), 'utf8')) as KeptFile;
  assert.equal(kept.tokens.length, row.compressible_tokens);
  assert.deepEqual(
    kept.settings.map((s) => s.budget),
    [64, 128],
  );
  assert.equal(kept.settings[0].kept[0][0].length, 64);
  assert.ok(!existsSync(join(out, 'kept', 'plain_cases__b__query-aware.json')), 'kept plans of the first case per task only');
  assert.match(progress.text, /\[=+\] 24\/24 done in/);
  const table = formatTable(rows);
  assert.match(table, /^method\s+budget\s+mode\s+n\s+score/);
  assert.match(table, /snapkv\s+128\s+query-aware\s+3\s+100\.0/);
  assert.match(formatMarkdownTable(rows), /\| snapkv \| 64 \| query-agnostic \| 3 \| 0\.0 \|/);
});

test('grid runner resumes: finished rows are skipped, a cut last line runs again', async () => {
  const dir = tempDir();
  const out = join(dir, 'out');
  const { ds } = dataset(dir);
  const grid = makeGrid(presses, [64, 128], ['query-aware']);
  await runGrid({ engine: new FakeEngine(), dataset: ds, grid, outDir: out, progress: sink(), log: sink() });
  const again = new FakeEngine();
  const r2 = await runGrid({ engine: again, dataset: ds, grid, outDir: out, progress: sink(), log: sink() });
  assert.equal(r2.computed, 0);
  assert.equal(r2.skipped, 12);
  assert.equal(r2.rows.length, 12);
  assert.equal(again.fullCalls + again.compressedCalls, 0);
  // keep 7 rows and half of the 8th, as a killed run leaves them
  const file = join(out, 'results.jsonl');
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  writeFileSync(file, lines.slice(0, 7).join('\n') + '\n' + lines[7].slice(0, 20));
  const third = new FakeEngine();
  const r3 = await runGrid({ engine: third, dataset: ds, grid, outDir: out, progress: sink(), log: sink() });
  assert.equal(r3.computed, 5);
  assert.equal(r3.skipped, 7);
  assert.equal(readRows(out).length, 12);
  assert.equal(new Set(readRows(out).map((r) => r.key)).size, 12);
  // a bigger grid only runs the new settings
  const r4 = await runGrid({
    engine: new FakeEngine(),
    dataset: ds,
    grid: makeGrid(presses, [64, 128, 256], ['query-aware']),
    outDir: out,
    progress: sink(),
    log: sink(),
  });
  assert.equal(r4.computed, 6);
});

test('grid runner: bad input is one line, the rest still runs', async () => {
  const dir = tempDir();
  const { ds } = dataset(dir);
  const grid = makeGrid(presses, [64], ['query-aware']);
  assert.throws(() => parsePress('bogus'), /unknown press "bogus"/);
  const bogus = { name: 'bogus', options: {} };
  await assert.rejects(
    runGrid({
      engine: new FakeEngine(),
      dataset: ds,
      grid: makeGrid([bogus], [64], ['query-aware']),
      outDir: join(dir, 'o1'),
      progress: sink(),
      log: sink(),
    }),
    /unknown press "bogus"/,
  );
  assert.ok(!existsSync(join(dir, 'o1', 'results.jsonl')));
  await assert.rejects(
    runGrid({ engine: new FakeEngine(), dataset: { ...ds, cases: [] }, grid, outDir: join(dir, 'o2'), progress: sink(), log: sink() }),
    /no usable cases; 1 line\(s\) skipped, the first: .*cases\.jsonl:2: invalid JSON/,
  );
  assert.throws(() => parsePress('full:window=8'), /press full does not take option window \(its options: none\)/);
  assert.throws(() => makeGrid([], [64], ['query-aware']), /empty grid/);
  assert.throws(() => parseBudgets(['64', 'x']), /budget "x" must be a positive integer/);
  assert.throws(() => parsePress('snapkv:window'), /bad option "window"/);
  // a case whose question does not fit is skipped with a line naming it
  const huge: EvalCase = { ...ds.cases[0], id: 'huge', after: 'q'.repeat(2000) };
  const log = sink();
  const res = await runGrid({
    engine: new FakeEngine(),
    dataset: { ...ds, cases: [huge, ...ds.cases] },
    grid,
    outDir: join(dir, 'o3'),
    progress: sink(),
    log,
  });
  assert.match(log.text, /case huge: huge: the question alone .* \(skipped\)/);
  assert.equal(res.computed, 6);
  assert.equal(res.failed, 2);
  // another model's results folder is refused, and so is another version of the same model
  await assert.rejects(
    runGrid({ engine: new FakeEngine('other'), dataset: ds, grid, outDir: join(dir, 'o3'), progress: sink(), log: sink() }),
    /holds results of model "fake"/,
  );
  const v1 = Object.assign(new FakeEngine('m'), { fingerprint: 'aaa' });
  await runGrid({ engine: v1, dataset: ds, grid, outDir: join(dir, 'o4'), progress: sink(), log: sink() });
  const v2 = Object.assign(new FakeEngine('m'), { fingerprint: 'bbb' });
  await assert.rejects(
    runGrid({ engine: v2, dataset: ds, grid, outDir: join(dir, 'o4'), progress: sink(), log: sink() }),
    /earlier version of model "m"/,
  );
});

test('settings: press specs with options, labels and keys', () => {
  const p = parsePress('LAQ:window=64:pool=avg:reference-mask=true');
  assert.deepEqual(p, { name: 'laq', options: { window: 64, pool: 'avg', 'reference-mask': true } });
  assert.equal(pressLabel(p), 'laq(pool=avg,reference-mask=true,window=64)');
  const q = parsePress('laq:pool=avg:window=64:reference-mask=true');
  const c: EvalCase = {
    id: 'c',
    task: 't',
    before: '',
    context: 'ctx',
    after: '\n\nq?',
    question: 'q?',
    answers: ['A'],
    scoring: { metric: 'string_match_part' },
    maxNewTokens: 8,
    chat: true,
    answerPrefix: '',
    meta: {},
  };
  assert.equal(rowKey(c, p, 64, 'query-aware'), rowKey(c, q, 64, 'query-aware'));
  assert.notEqual(rowKey(c, p, 64, 'query-aware'), rowKey(c, p, 64, 'query-agnostic'));
  // whatever decides a row's output is in its key: a changed answer, needle or answer length is computed again
  for (const changed of [
    { answers: ['B'] },
    { context: 'ctx2' },
    { maxNewTokens: 9 },
    { scoring: { metric: 'exact_match' } },
  ] as Partial<EvalCase>[]) {
    assert.notEqual(rowKey({ ...c, ...changed }, p, 64, 'query-aware'), rowKey(c, p, 64, 'query-aware'), JSON.stringify(changed));
  }
  assert.notEqual(
    rowKey(c, p, 64, 'query-aware', 'model-a'),
    rowKey(c, p, 64, 'query-aware', 'model-b'),
    'the model fingerprint is in the key',
  );
  // every option the method takes is in the digest, defaults included: an explicit default digests the same
  assert.equal(settingDigest(parsePress('snapkv'), 'm'), settingDigest(parsePress('snapkv:window=32'), 'm'));
  assert.notEqual(settingDigest(parsePress('snapkv'), 'm'), settingDigest(parsePress('snapkv:window=16'), 'm'));
  const grid: Setting[] = makeGrid([p], [1, 2], ['query-aware', 'query-agnostic']);
  assert.equal(grid.length, 4);
  assert.equal(makeGrid([p, q], [64, 64, 128], ['query-aware']).length, 2, 'a setting given twice runs once');
  for (const b of ['0x10', '1e2', '64.0', ' ']) assert.throws(() => parseBudgets([b]), /must be a positive integer/, b);
  assert.deepEqual(parseBudgets(['64', '128']), [64, 128]);
  assert.throws(() => parsePress('judgeq:no-window=maybe'), /no-window must be true or false, got "maybe"/);
});

test('progress: time left from computed rows only, summary means', () => {
  let t = 0;
  const s = sink();
  const pr = new Progress(4, s, () => t, 0);
  pr.skip(1);
  t = 1000;
  pr.tick(1000, 'x');
  // 2 rows left at 1 s each
  assert.equal(pr.remainingMs(), 2000);
  assert.match(s.text, /^\[=+> +\] 2\/4 2s left {2}x\n$/);
  assert.equal(formatDuration(125000), '2m05s');
  assert.equal(formatDuration(7200000), '2h00m');
  const tty = sink(true);
  const p2 = new Progress(1, tty, () => 0);
  p2.tick(5, 'y');
  assert.equal(tty.text.startsWith('\r\x1b[2K'), true, 'a terminal line is erased first');
  assert.match(tty.text.slice(5), /^\[=+\] 1\/1 done in 0s {2}y\n$/);
  const mk = (score: number, task: string) => ({
    press: 'a',
    options: {},
    budget: 1,
    mode: 'query-aware' as Mode,
    task,
    score,
    fidelity: { oracle_hit: null, attention_recall: 50, top1: null, kl: null },
  });
  const rows = [mk(100, 't1'), mk(0, 't1'), mk(50, 't2')] as unknown as Parameters<typeof summarize>[0];
  const all = summarize(rows);
  assert.equal(all.length, 1);
  assert.equal(all[0].score, 50);
  assert.equal(all[0].n, 3);
  assert.equal(all[0].oracle_hit, null);
  assert.equal(all[0].attention_recall, 50);
  assert.deepEqual(
    summarize(rows, true).map((r) => [r.task, r.score]),
    [
      ['t1', 50],
      ['t2', 50],
    ],
  );
});

test('kept plans: the needle case nearest the middle of the longest haystack, else the first case', () => {
  const mk = (id: string, task: string, meta: Record<string, number>) => ({ id, task, meta }) as unknown as EvalCase;
  const cases = [
    mk('n-1-0', 'niah', { length: 1000, depth: 0 }),
    mk('n-1-50', 'niah', { length: 1000, depth: 50 }),
    mk('n-2-40', 'niah', { length: 2000, depth: 40 }),
    mk('n-2-50', 'niah', { length: 2000, depth: 50 }),
    mk('n-2-100', 'niah', { length: 2000, depth: 100 }),
    mk('vt-0', 'ruler:vt', { length: 2048 }),
    mk('vt-1', 'ruler:vt', { length: 2048 }),
  ];
  assert.deepEqual([...keptCaseIds(cases)].sort(), ['n-2-50', 'vt-0']);
});

test('model fingerprint: weights and config count; model cards, curves and trained press files do not, whose own rows key on them', async () => {
  const { ModelEngine } = await import('../src/eval/model-engine.js');
  const { writeSafetensors } = await import('../src/model/safetensors.js');
  const { settingDigest } = await import('../src/eval/settings.js');
  const { utimesSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'kvevict-fp-'));
  const soft = join(dir, 'judgeq.safetensors');
  const trained = (value: number) =>
    writeSafetensors(soft, [{ name: 'soft_embeddings', shape: [1, 2], data: Float32Array.of(value, 1) }], { model_hash: 'a'.repeat(64) });
  try {
    for (const f of ['config.json', 'model.safetensors', 'README.md', 'loss.svg']) writeFileSync(join(dir, f), 'x');
    trained(1);
    const before = ModelEngine.fingerprintOf(dir);
    const judgeq = { name: 'judgeq', options: { soft } },
      snapkv = { name: 'snapkv', options: {} };
    const digests = [settingDigest(judgeq, before), settingDigest(snapkv, before)];
    writeFileSync(join(dir, 'README.md'), 'a longer model card');
    writeFileSync(join(dir, 'loss.svg'), '<svg/>');
    trained(2.5);
    utimesSync(soft, new Date(2021, 0, 1), new Date(2021, 0, 1));
    assert.equal(ModelEngine.fingerprintOf(dir), before, 'retrained soft tokens are not the model');
    assert.notEqual(settingDigest(judgeq, before), digests[0], "but Judge Q's rows key on them");
    assert.equal(settingDigest(snapkv, before), digests[1], "and SnapKV's rows stay");
    writeFileSync(join(dir, 'lookaheadkv.safetensors'), 'not a trained file: counted as weights');
    const withOther = ModelEngine.fingerprintOf(dir);
    assert.notEqual(withOther, before);
    utimesSync(join(dir, 'model.safetensors'), new Date(2020, 0, 1), new Date(2020, 0, 1));
    assert.notEqual(ModelEngine.fingerprintOf(dir), withOther);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("results folders: one writer at a time, a dead writer's lock taken over, a torn last line cut, rows counted once, bad lines named", async () => {
  const dir = tempDir();
  const out = join(dir, 'out');
  const { ds } = dataset(dir);
  const grid = makeGrid(presses, [64], ['query-aware']);
  await runGrid({ engine: new FakeEngine(), dataset: ds, grid, outDir: out, progress: sink(), log: sink() });
  assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock is given back');
  // a live writer (this test's parent process) holds the folder
  writeFileSync(join(out, LOCK_FILE), `${process.ppid}\n`);
  await assert.rejects(
    runGrid({ engine: new FakeEngine(), dataset: ds, grid, outDir: out, progress: sink(), log: sink() }),
    /another kvevict \(pid \d+\) is writing results here/,
  );
  // a lock left by a process that is gone is taken over; a torn last line is removed and said
  writeFileSync(join(out, LOCK_FILE), '999999999\n');
  const file = join(out, 'results.jsonl');
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  writeFileSync(file, [...lines.slice(0, -1), lines[0], 'not json', ''].join('\n') + lines[lines.length - 1].slice(0, 40));
  const log = sink();
  const res = await runGrid({ engine: new FakeEngine(), dataset: ds, grid, outDir: out, progress: sink(), log });
  assert.match(log.text, /removed a torn last line/);
  assert.equal(res.computed, 1, 'the torn row runs again');
  assert.equal(res.rows.length, 6);
  const { rows, malformed } = readRowsWithProblems(out);
  assert.equal(rows.length, 6, 'a row written twice counts once');
  assert.deepEqual(malformed, [7]);
  assert.ok(readFileSync(file, 'utf8').endsWith('\n'));
});
