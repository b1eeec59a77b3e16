import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { KvevictError } from '../src/errors.js';
import { sharedData } from '../src/paths.js';
import { loadPlain } from '../src/eval/datasets/plain.js';
import { loadRulerFile, splitRulerInput } from '../src/eval/datasets/ruler-file.js';
import { loadLongBench } from '../src/eval/datasets/longbench.js';
import { insertNeedle, needleDataset, CLASSIC_NEEDLE, CLASSIC_QUESTION } from '../src/eval/datasets/needle.js';
import { splitSentences, haystackText } from '../src/eval/datasets/haystack.js';
import { loadDataset } from '../src/eval/datasets/index.js';
import { rulerDataset } from '../src/eval/datasets/ruler/index.js';
import { zeta } from '../src/eval/datasets/ruler/fwe.js';
import { largestFitting } from '../src/eval/datasets/ruler/fit.js';
import { RULER_TASK_NAMES } from '../src/eval/datasets/ruler/tasks.js';
import { preparePrompt, tokenTexts, truncateMiddle } from '../src/eval/prompt.js';
import type { EvalCase } from '../src/eval/case.js';
import { byteTokenizer, tempDir, writeLines } from './helpers/eval-fixtures.js';

const tok = byteTokenizer();
const isUserError = (re: RegExp) => (e: unknown) => e instanceof KvevictError && re.test(e.message);

test('plain JSONL: good lines load, bad lines are reported with file:line and skipped', () => {
  const dir = tempDir();
  const file = writeLines(dir, 'cases.jsonl', [
    JSON.stringify({ id: 'a', context: 'The sky is green.', question: 'What color is the sky?', answers: ['green'] }),
    '{not json',
    JSON.stringify({ id: 'b', context: 'c', question: 'q' }),
    JSON.stringify({ id: 'c', context: 'c', question: 'q', answers: ['x'], metric: 'bleu' }),
    '',
    JSON.stringify({ id: 'a', context: 'c', question: 'q', answers: ['x'] }),
    JSON.stringify({ id: 'd', context: 'c', question: 'q', answers: ['x', 'y'], metric: 'rouge_l' }),
  ]);
  const ds = loadPlain(file);
  assert.deepEqual(
    ds.cases.map((c) => c.id),
    ['a', 'd'],
  );
  assert.equal(ds.cases[0].scoring.metric, 'string_match_part');
  assert.equal(ds.cases[1].scoring.metric, 'rouge_l');
  assert.equal(ds.cases[0].after, '\n\nWhat color is the sky?');
  assert.equal(ds.problems.length, 4);
  assert.match(ds.problems[0], new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: invalid JSON`));
  assert.match(ds.problems[1], /cases\.jsonl:3: missing "answers"/);
  assert.match(ds.problems[2], /cases\.jsonl:4: .*unknown metric "bleu"/);
  assert.match(ds.problems[3], /cases\.jsonl:6: duplicate id "a"/);
  assert.throws(() => loadPlain(join(dir, 'missing.jsonl')), isUserError(/missing\.jsonl: dataset file not found/));
  // "max_new_tokens" sets a case's answer length; a bad one is a problem of its line
  const lens = loadPlain(
    writeLines(dir, 'lens.jsonl', [
      JSON.stringify({ id: 'long', context: 'c', question: 'q', answers: ['x'], max_new_tokens: 200 }),
      JSON.stringify({ id: 'default', context: 'c', question: 'q', answers: ['x'] }),
      JSON.stringify({ id: 'bad', context: 'c', question: 'q', answers: ['x'], max_new_tokens: 2.5 }),
    ]),
  );
  assert.deepEqual(
    lens.cases.map((c) => [c.id, c.maxNewTokens]),
    [
      ['long', 200],
      ['default', 64],
    ],
  );
  assert.match(lens.problems[0], /lens\.jsonl:3: "max_new_tokens" must be a positive integer/);
  // a byte-order mark is not part of the first id; a line that is not UTF-8, and empty fields, are named
  const good = JSON.stringify({ id: 'ok', context: 'c', question: 'q', answers: ['x'] });
  const messy = join(dir, 'messy.jsonl');
  writeFileSync(
    messy,
    Buffer.concat([
      Buffer.from('\uFEFF' + good + '\n'),
      Buffer.from('{"id": "latin1", "context": "caf'),
      Buffer.from([0xe9]),
      Buffer.from('", "question": "q", "answers": ["x"]}\n'),
      Buffer.from(JSON.stringify({ id: 'e1', context: '  ', question: 'q', answers: ['x'] }) + '\n'),
      Buffer.from(JSON.stringify({ id: 'e2', context: 'c', question: '', answers: ['x'] }) + '\n'),
      Buffer.from(JSON.stringify({ id: 'e3', context: 'c', question: 'q', answers: ['x', ''] }) + '\n'),
    ]),
  );
  const m = loadPlain(messy);
  assert.deepEqual(
    m.cases.map((c) => c.id),
    ['ok'],
  );
  assert.match(m.problems[0], /messy\.jsonl:2: not valid UTF-8/);
  assert.match(m.problems[1], /messy\.jsonl:3: "context" is empty/);
  assert.match(m.problems[2], /messy\.jsonl:4: "question" is empty/);
  assert.match(m.problems[3], /messy\.jsonl:5: "answers" holds an empty answer/);
});

test('RULER file: the real niah_multikey_3 sample splits into context, question and answer prefix', () => {
  const file = join(sharedData, 'ruler', 'niah_multikey_3.4096.jsonl');
  const ds = loadRulerFile(file);
  assert.equal(ds.cases.length, 500);
  assert.equal(ds.problems.length, 0);
  const c = ds.cases[0];
  assert.equal(c.task, 'ruler:niah_multikey_3');
  assert.equal(c.id, 'niah_multikey_3-0');
  assert.deepEqual(c.answers, ['1ee34dc4-3b04-4a8b-805b-fdc94e7ed827']);
  assert.equal(c.scoring.metric, 'string_match_all');
  assert.equal(c.maxNewTokens, 128);
  assert.ok(c.context.startsWith('A special magic uuid is hidden within the following text.'));
  assert.equal(c.after, '\nWhat is the special magic uuid for 455ac762-7428-4656-b3ee-4d3b5a104129 mentioned in the provided text?');
  assert.equal(c.answerPrefix, ' The special magic uuid for 455ac762-7428-4656-b3ee-4d3b5a104129 mentioned in the provided text is');
  assert.ok(c.context.includes(`is: ${c.answers[0]}.`));
  // a split without an answer prefix
  assert.deepEqual(splitRulerInput('ctx line\nQuestion: q?', ' Answer: A'), {
    context: 'ctx line',
    after: '\nQuestion: q?',
    answerPrefix: '',
  });
  const dir = tempDir();
  const bad = writeLines(dir, 'mystery.jsonl', ['{}']);
  assert.throws(() => loadRulerFile(bad), isUserError(/mystery\.jsonl: cannot tell the RULER task/));
});

test('LongBench file: official template, generation length and metric per task', () => {
  const ds = loadLongBench(join(sharedData, 'longbench', 'multi_news.jsonl'));
  assert.equal(ds.cases.length, 200);
  const c = ds.cases[0];
  assert.equal(c.task, 'longbench:multi_news');
  assert.equal(c.before, 'You are given several news passages. Write a one-page summary of all news. \n\nNews:\n');
  assert.equal(c.after, '\n\nNow, write a one-page summary of all the news.\n\nSummary:');
  assert.equal(c.scoring.metric, 'rouge_l');
  assert.equal(c.maxNewTokens, 512);
  assert.equal(c.chat, true);
  // a bare name resolves to ../shared/data/longbench
  assert.equal(loadLongBench('multi_news').cases.length, 200);
  const dir = tempDir();
  const f = writeLines(dir, 'mixed.jsonl', [
    JSON.stringify({
      input: 'What is X?',
      context: 'Q: Who? Type: Human being',
      answers: ['Entity'],
      dataset: 'trec',
      all_classes: ['Entity', 'Human being'],
      _id: 't1',
    }),
    JSON.stringify({ input: '', context: 'c', answers: ['a'], dataset: 'klingon_qa', _id: 'k' }),
    JSON.stringify({ input: 'q', context: 'c', answers: ['a'], dataset: 'hotpotqa', _id: 'h' }),
  ]);
  const m = loadLongBench(f);
  assert.equal(m.cases.length, 2);
  const trec = m.cases[0];
  assert.deepEqual(trec.scoring, { metric: 'classification', allClasses: ['Entity', 'Human being'], firstLine: true });
  assert.equal(trec.chat, false);
  assert.equal(trec.maxNewTokens, 64);
  assert.equal(trec.after, '\nWhat is X?');
  assert.equal(
    m.cases[1].after,
    '\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: q\nAnswer:',
  );
  assert.match(m.problems[0], /mixed\.jsonl:2: unknown LongBench task "klingon_qa"/);
});

test('middle truncation keeps the first and last half, as LongBench', () => {
  const head = Int32Array.from({ length: 10 }, (_, i) => i);
  const tail = Int32Array.from([100, 101]);
  // combined [0..9, 100, 101]: first 4 + last 4
  assert.deepEqual([...truncateMiddle(head, tail, 8, 'x').head], [0, 1, 2, 3, 8, 9]);
  assert.equal(truncateMiddle(head, tail, 8, 'x').removed, 4);
  assert.deepEqual([...truncateMiddle(head, tail, 9, 'x').head], [0, 1, 2, 3, 8, 9]);
  assert.equal(truncateMiddle(head, tail, 12, 'x').removed, 0);
  assert.throws(() => truncateMiddle(head, tail, 2, 'case7'), isUserError(/case7: the question alone/));
  const c: EvalCase = {
    id: 'long',
    task: 't',
    before: 'B:',
    context: 'x'.repeat(500),
    after: '\nQ?',
    question: 'Q?',
    answers: ['a'],
    scoring: { metric: 'f1' },
    maxNewTokens: 10,
    chat: true,
    answerPrefix: '',
    meta: {},
  };
  const p = preparePrompt(c, tok, 200);
  assert.ok(p.truncatedTokens > 0);
  assert.ok(p.contextTokens.length + p.questionTokens.length + c.maxNewTokens <= 200);
  assert.equal(tok.decode(p.questionTokens), '\nQ?<|im_end|>\n<|im_start|>assistant\n');
  assert.ok(tok.decode(p.contextTokens).startsWith('<|im_start|>user\nB:xxx'));
  const q = preparePrompt({ ...c, context: 'short' }, tok, 200);
  assert.equal(q.truncatedTokens, 0);
  assert.equal(
    tok.decode(q.contextTokens) + tok.decode(q.questionTokens),
    '<|im_start|>user\nB:short\nQ?<|im_end|>\n<|im_start|>assistant\n',
  );
});

test('needle insertion: exact length, sentence boundary at the depth', () => {
  const hay = [1, 2, 46, 3, 4, 46, 5, 6, 7, 8];
  const periods = new Set([46]);
  assert.deepEqual([...insertNeedle(hay, [90, 91], periods, 8, 50).tokens], [1, 2, 46, 90, 91, 3, 4, 46]);
  assert.deepEqual([...insertNeedle(hay, [90, 91], periods, 8, 80).tokens], [1, 2, 46, 90, 91, 3, 4, 46]);
  assert.deepEqual([...insertNeedle(hay, [90, 91], periods, 8, 100).tokens], [1, 2, 46, 3, 4, 46, 90, 91]);
  assert.deepEqual([...insertNeedle(hay, [90, 91], periods, 8, 0).tokens], [90, 91, 1, 2, 46, 3, 4, 46]);
  const ds = needleDataset({
    tokenizer: tok,
    haystack: haystackText(true),
    lengths: [300, 700],
    depths: [0, 50, 100],
    needles: [{ needle: CLASSIC_NEEDLE, question: CLASSIC_QUESTION }],
  });
  assert.equal(ds.cases.length, 6);
  for (const c of ds.cases) {
    assert.equal(tok.encode(c.context).length, c.meta.length);
    const at = c.context.indexOf(CLASSIC_NEEDLE);
    assert.ok(at >= 0);
    assert.ok(at === 1 || c.context[at - 2] === '.', `needle of ${c.id} follows a sentence end`);
    assert.equal(c.after, `\n\n${CLASSIC_QUESTION}`);
    assert.equal(c.scoring.metric, 'needle_recall');
  }
  // L700: depth 0 < depth 50 < depth 100
  assert.ok(ds.cases[3].context.indexOf(CLASSIC_NEEDLE) < ds.cases[4].context.indexOf(CLASSIC_NEEDLE));
  assert.ok(ds.cases[4].context.indexOf(CLASSIC_NEEDLE) < ds.cases[5].context.indexOf(CLASSIC_NEEDLE));
  assert.throws(
    () => needleDataset({ tokenizer: tok, haystack: 'a. b.', lengths: [], depths: [0], needles: [{ needle: 'n', question: 'q' }] }),
    isUserError(/empty grid/),
  );
});

test('sentence splitting and sizing helpers', () => {
  assert.deepEqual(splitSentences('Hi there. Mr. Smith came! Did he? Yes "sure." End'), [
    'Hi there.',
    'Mr. Smith came!',
    'Did he?',
    'Yes "sure."',
    'End',
  ]);
  assert.ok(Math.abs(zeta(2) - Math.PI ** 2 / 6) < 1e-12);
  assert.ok(Math.abs(zeta(4) - Math.PI ** 4 / 90) < 1e-12);
  // tokens = 10 n + 5 fits 1000 up to n = 99
  assert.equal(
    largestFitting((n) => 10 * n + 5, 1000),
    99,
  );
  assert.equal(
    largestFitting((n) => 10 * n + 5, 1000, 3, 2),
    99,
  );
  assert.equal(
    largestFitting((n) => 10 * n + 5, 10),
    0,
  );
});

test('RULER tasks generated in TypeScript fit the length and hold their answers', () => {
  const essay = haystackText(true);
  const tasks = RULER_TASK_NAMES.filter((t) => !t.startsWith('qa_'));
  assert.equal(tasks.length, 11);
  for (const task of tasks) {
    const ds = rulerDataset(task, { tokenizer: tok, maxSeqLength: 2048, numSamples: 2, seed: 7, essay });
    assert.equal(ds.cases.length, 2, task);
    for (const c of ds.cases) {
      const p = preparePrompt(c, tok, 2048);
      assert.equal(p.truncatedTokens, 0, task);
      const used = p.contextTokens.length + p.questionTokens.length + c.maxNewTokens;
      assert.ok(used <= 2048, `${task}: ${used} tokens`);
      assert.ok(used > 2048 * 0.6, `${task}: only ${used} tokens used`);
      assert.equal(c.scoring.metric, 'string_match_all');
      for (const a of c.answers) assert.ok(c.context.includes(a), `${task}: answer ${a} in the context`);
    }
    const again = rulerDataset(task, { tokenizer: tok, maxSeqLength: 2048, numSamples: 2, seed: 7, essay });
    assert.deepEqual(again.cases, ds.cases, `${task} is deterministic`);
  }
  const single = rulerDataset('niah_single_1', { tokenizer: tok, maxSeqLength: 1024, numSamples: 1, seed: 1, essay }).cases[0];
  assert.ok(single.before.startsWith('A special magic number is hidden within the following text.'));
  assert.match(single.answerPrefix, /^ The special magic number for [a-z]+-[a-z]+ mentioned in the provided text is$/);
  assert.match(single.answers[0], /^\d{7}$/);
  const multi = rulerDataset('niah_multivalue', { tokenizer: tok, maxSeqLength: 1024, numSamples: 1, seed: 1, essay }).cases[0];
  assert.equal(multi.answers.length, 4);
  assert.ok(multi.before.startsWith('Some special magic numbers are hidden'));
  const cwe = rulerDataset('cwe', { tokenizer: tok, maxSeqLength: 2048, numSamples: 1, seed: 3, essay }).cases[0];
  const counts = new Map<string, number>();
  for (const m of cwe.context.matchAll(/\d+\. (\S+)/g)) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  for (const a of cwe.answers) assert.equal(counts.get(a), 6, 'common words appear 6 times below 4096 tokens');
  const fwe = rulerDataset('fwe', { tokenizer: tok, maxSeqLength: 1024, numSamples: 1, seed: 3, essay }).cases[0];
  const words = fwe.context.split(' ');
  const n = (w: string) => words.filter((x) => x === w).length;
  assert.ok(n('...') > n(fwe.answers[0]) && n(fwe.answers[0]) >= n(fwe.answers[1]) && n(fwe.answers[1]) >= n(fwe.answers[2]));
  const vt = rulerDataset('vt', { tokenizer: tok, maxSeqLength: 1024, numSamples: 1, seed: 3, essay }).cases[0];
  assert.equal(vt.answers.length, 5);
  assert.match(vt.before, /^Memorize and track/);
  assert.match(vt.answerPrefix, /5 variables are assigned the value \d{5}, they are: $/);
});

test('RULER QA needs a user-given file and says so', () => {
  const essay = 'x';
  assert.throws(
    () => rulerDataset('qa_1', { tokenizer: tok, maxSeqLength: 1024, numSamples: 1, seed: 1, essay }),
    isUserError(/ruler:qa_1 needs the SQuAD.*--qa-file/),
  );
  const dir = tempDir();
  const squad = join(dir, 'squad.json');
  const para = (i: number) => ({
    context: `Paragraph ${i} says the secret code is ${1000 + i}.`,
    qas: [{ question: `What is the code in paragraph ${i}?`, answers: [{ text: String(1000 + i) }], is_impossible: false }],
  });
  writeFileSync(squad, JSON.stringify({ data: [{ paragraphs: Array.from({ length: 30 }, (_, i) => para(i)) }] }));
  const ds = rulerDataset('qa_1', { tokenizer: tok, maxSeqLength: 1024, numSamples: 3, seed: 1, essay, qaFile: squad });
  assert.equal(ds.cases.length, 3);
  ds.cases.forEach((c, i) => {
    assert.deepEqual(c.answers, [String(1000 + i)]);
    assert.ok(c.context.includes(`secret code is ${1000 + i}.`));
    assert.equal(c.scoring.metric, 'string_match_part');
    assert.match(c.context, /^Document 1:\n/);
  });
  const hotpot = join(dir, 'hotpot.json');
  writeFileSync(
    hotpot,
    JSON.stringify([
      {
        question: 'Who?',
        answer: 'Ann',
        context: [
          ['T1', ['Ann wrote it.', ' Yes.']],
          ['T2', ['Other.']],
        ],
      },
    ]),
  );
  const h = rulerDataset('qa_2', { tokenizer: tok, maxSeqLength: 1024, numSamples: 1, seed: 1, essay, qaFile: hotpot });
  assert.ok(h.cases[0].context.includes('T1\nAnn wrote it. Yes.'));
});

test('dataset names: unknown tasks and forms are user errors', () => {
  const opts = { tokenizer: tok, maxContext: 1024, embeddedModel: true, seed: 1 };
  assert.throws(() => loadDataset('ruler:nope', opts), isUserError(/unknown RULER task "nope"/));
  assert.throws(() => loadDataset('squad', opts), isUserError(/unknown dataset "squad"/));
  assert.throws(() => loadDataset('longbench:nothing_here', opts), isUserError(/LongBench file not found/));
  const niah = loadDataset('niah', { ...opts, depths: [0, 100] });
  assert.equal(niah.cases.length, 8);
  for (const c of niah.cases) {
    const p = preparePrompt(c, tok, 1024);
    assert.equal(p.truncatedTokens, 0);
  }
  assert.equal(loadDataset('ruler:niah_single_1', { ...opts, samples: 3, lengths: [768, 1024] }).cases.length, 3);
  assert.throws(() => loadDataset('ruler:cwe', opts), isUserError(/ruler:cwe: a context of 1024 tokens is too short/));
});

test('token texts for display: a character split over byte tokens shows once, on its last byte', () => {
  const ids = tok.encode('a—b<|im_end|>');
  // "—" is 3 bytes: e2 80 94
  assert.deepEqual(tokenTexts(tok, ids), ['a', '', '', '—', 'b', '<|im_end|>']);
  assert.equal(tokenTexts(tok, ids).join(''), 'a—b<|im_end|>');
});
