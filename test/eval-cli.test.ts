import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEMO_LEAD, demoPlan, demoPresses } from '../src/eval/demo.js';
import { tinyRawConfig, writeRandomModelDir } from './helpers/random-model.js';
import { tempDir, writeLines } from './helpers/eval-fixtures.js';
import { cli } from './helpers/cli.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

/** Run the CLI as bin/kvevict.js does, on this build. */
function kvevict(args: string[]): { code: number; stdout: string; stderr: string } {
  const script = `const { run } = await import(${JSON.stringify(pathToFileURL(MAIN).href)}); process.exitCode = await run(process.argv.slice(1));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const dir = tempDir();
const model = join(dir, 'tiny');
writeRandomModelDir(model, tinyRawConfig('llama', { max_position_embeddings: 1024 }), { seed: 3, scale: 0.2 });
const cases = writeLines(dir, 'cases.jsonl', [
  JSON.stringify({ id: 'one', context: 'The key is 4412. '.repeat(20), question: 'What is the key?', answers: ['4412'] }),
  '{"id": "two", "context": ',
  JSON.stringify({ id: 'three', context: 'Blue birds sing. '.repeat(25), question: 'What sings?', answers: ['birds'], metric: 'f1' }),
]);

test('kvevict eval: grid rows, --json summary, malformed line named, resume', () => {
  const out = join(dir, 'out');
  const args = [
    'eval',
    '--dataset',
    cases,
    '--model',
    model,
    '--press',
    'full,snapkv:window=4,streaming',
    '--budget',
    '16,32',
    '--out',
    out,
    '--json',
  ];
  const r = kvevict(args);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /cases\.jsonl:2: invalid JSON/);
  const json = JSON.parse(r.stdout) as { rows: { press: string; budget: number; mode: string; score: number; n: number }[] };
  assert.equal(json.rows.length, 6);
  for (const row of json.rows) {
    assert.equal(row.n, 2);
    assert.equal(row.mode, 'query-aware');
    assert.ok(row.score >= 0 && row.score <= 100);
  }
  assert.deepEqual(json.rows.map((x) => x.press).sort(), [
    'full',
    'full',
    'snapkv(window=4)',
    'snapkv(window=4)',
    'streaming',
    'streaming',
  ]);
  const lines = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n');
  assert.equal(lines.length, 12);
  const row = JSON.parse(lines.find((l) => l.includes('"press":"snapkv"'))!) as Record<string, unknown>;
  for (const k of ['case', 'press', 'options', 'budget', 'mode', 'prompt_tokens', 'prediction', 'score', 'fidelity', 'timings'])
    assert.ok(k in row, `row has ${k}`);
  // a rerun skips every finished row and prints the same summary
  const again = kvevict(args);
  assert.equal(again.code, 0);
  assert.deepEqual(JSON.parse(again.stdout), json);
  assert.equal(readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').length, 12);
  // the table form
  const table = kvevict(args.slice(0, -1));
  assert.match(table.stdout, /^method\s+budget\s+mode\s+n\s+score/);

  const rep = kvevict(['report', out, '--out', join(dir, 'report')]);
  assert.equal(rep.code, 0, rep.stderr);
  assert.ok(existsSync(join(dir, 'report', 'index.html')));
  assert.ok(existsSync(join(dir, 'report', 'score-query-aware.png')));
});

test('kvevict eval: needle grid and a generated RULER task on a tiny model, both modes', () => {
  const out = join(dir, 'out-niah');
  const r = kvevict([
    'eval',
    '--dataset',
    'niah',
    '--model',
    model,
    '--press',
    'full,snapkv',
    '--budget',
    '32',
    '--mode',
    'query-aware,query-agnostic',
    '--lengths',
    '300',
    '--depths',
    '0,100',
    '--out',
    out,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as { rows: { n: number; mode: string }[] };
  assert.equal(json.rows.length, 4);
  assert.ok(json.rows.every((x) => x.n === 2));
  const v = kvevict([
    'eval',
    '--dataset',
    'ruler:niah_single_1',
    '--model',
    model,
    '--press',
    'snapkv',
    '--budget',
    '64',
    '--samples',
    '2',
    '--out',
    join(dir, 'out-ruler'),
    '--json',
  ]);
  assert.equal(v.code, 0, v.stderr);
  assert.equal((JSON.parse(v.stdout) as { rows: { n: number }[] }).rows[0].n, 2);
});

test('kvevict eval: bad input is one line', () => {
  const fail = (args: string[], re: RegExp) => {
    const r = kvevict(args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  };
  const base = ['--model', model, '--press', 'snapkv', '--budget', '32', '--out', join(dir, 'bad')];
  fail(['eval', '--dataset', 'ruler:nope', ...base], /^kvevict: --dataset: unknown RULER task "nope"/);
  fail(['eval', '--dataset', 'wat', ...base], /unknown dataset "wat"/);
  fail(['eval', '--dataset', join(dir, 'missing.jsonl'), ...base], /missing\.jsonl: dataset file not found/);
  fail(['eval', '--dataset', 'ruler:qa_1', ...base], /ruler:qa_1 needs the SQuAD.*--qa-file/);
  fail(
    ['eval', '--dataset', cases, '--model', model, '--press', 'nosuch', '--budget', '32', '--out', join(dir, 'bad')],
    /unknown press "nosuch"/,
  );
  fail(
    ['eval', '--dataset', cases, '--model', model, '--press', 'snapkv', '--budget', '0', '--out', join(dir, 'bad')],
    /budget "0" must be a positive integer/,
  );
  fail(['eval', '--dataset', cases, '--model', model, '--press', 'snapkv', '--out', join(dir, 'bad')], /--budget is required/);
  fail(
    ['eval', '--dataset', cases, '--model', model, '--press', 'snapkv', '--budget', '32', '--mode', 'sideways', '--out', join(dir, 'bad')],
    /unknown mode "sideways"/,
  );
  fail(['report', join(dir, 'nothing'), '--out', join(dir, 'r')], /no results\.jsonl here/);
});

test('demo plan: the leading methods first, Judge Q and LookaheadKV only with their trained files', () => {
  const without = demoPresses(join(dir, 'no-soft.safetensors'), join(dir, 'no-modules.safetensors'));
  assert.deepEqual(without.slice(0, DEMO_LEAD.length), DEMO_LEAD);
  assert.ok(!without.some((p) => p.startsWith('judgeq') || p === 'lookaheadkv'));
  assert.ok(without.includes('h2o') && without.includes('laq++'));
  const soft = join(dir, 'soft.safetensors');
  writeFileSync(soft, '');
  assert.ok(demoPresses(soft, join(dir, 'no-modules.safetensors')).includes('judgeq'));
  assert.ok(!demoPresses(soft, join(dir, 'no-modules.safetensors')).includes('lookaheadkv'));
  assert.ok(demoPresses(join(dir, 'no-soft.safetensors'), soft).includes('lookaheadkv'));
  const plan = demoPlan([64, 128], ['query-aware'], without);
  assert.equal(plan.grid.length, without.length * 2);
  assert.deepEqual(plan.datasets, ['niah', 'ruler:niah_single_2', 'ruler:vt']);
});

test('output paths are checked before any work: a file where a folder goes, a missing folder, one line and exit 2', () => {
  for (const [args, why] of [
    [
      ['eval', '--dataset', 'niah', '--press', 'full', '--budget', '64', '--out', 'README.md'],
      /eval: --out README\.md: is a file, not a folder/,
    ],
    [['report', 'runs/none', '--out', 'README.md'], /report: --out README\.md: is a file, not a folder/],
    [
      ['convert', '--to', 'gguf', '--out', '/nonexistent/dir/x.gguf'],
      /convert: --out \/nonexistent\/dir\/x\.gguf: folder \/nonexistent\/dir does not exist/,
    ],
    [['pretrain', '--tiny', '--out', 'README.md'], /pretrain: --out README\.md: is a file, not a folder/],
  ] as [string[], RegExp][]) {
    const r = cli(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, why);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});
