import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeAnswer } from '../src/eval/metrics/normalize.js';
import { pyRound, pySplit, pyStrip } from '../src/eval/metrics/python-text.js';
import { exactMatch, qaF1Score } from '../src/eval/metrics/qa-f1.js';
import { rulerPostprocess, stringMatchAll, stringMatchPart } from '../src/eval/metrics/ruler.js';
import { reconLcs, rouge1Score, rougeLScore } from '../src/eval/metrics/rouge.js';
import { SequenceMatcher, fuzzRatio } from '../src/eval/metrics/sequence-matcher.js';
import { classificationScore, codeSimScore, countScore, retrievalScore } from '../src/eval/metrics/longbench.js';
import { needleRecall } from '../src/eval/metrics/needle.js';
import { parseMetric, scorePrediction } from '../src/eval/metrics/index.js';
import { KvevictError } from '../src/errors.js';

const close = (a: number, b: number, eps = 1e-12) => assert.ok(Math.abs(a - b) <= eps, `${a} != ${b}`);
/** the rouge package's F: 2 p r / (p + r + 1e-8) */
const rougeF = (p: number, r: number) => 2 * ((p * r) / (p + r + 1e-8));

test('python text helpers: split, strip, round half to even', () => {
  assert.deepEqual(pySplit('  a\tb\n\nc\x1fd\u3000e '), ['a', 'b', 'c', 'd', 'e']);
  assert.deepEqual(pySplit('   '), []);
  assert.equal(pyStrip('\n\t x y \x1c'), 'x y');
  assert.equal(pyRound(12.5), 12);
  assert.equal(pyRound(13.5), 14);
  assert.equal(pyRound(0.5), 0);
  assert.equal(pyRound(96.55), 97);
  assert.equal(pyRound(3.49), 3);
});

test('normalize_answer: lower, punctuation, articles, whitespace', () => {
  assert.equal(normalizeAnswer('The Cat, sat on a mat!'), 'cat sat on mat');
  assert.equal(normalizeAnswer('The theater.'), 'theater');
  assert.equal(normalizeAnswer('An  apple\tpie'), 'apple pie');
  assert.equal(normalizeAnswer(''), '');
});

test('qa F1: overlap, duplicates, empty, max over references', () => {
  // [cat, sat] vs [cat, sat, down]: P = 1, R = 2/3, F1 = 0.8
  close(qaF1Score('the cat sat', 'a cat sat down'), 0.8);
  // multiset overlap: min(3, 1) = 1; P = 1/3, R = 1/2, F1 = 0.4
  close(qaF1Score('cat cat cat', 'cat dog'), 0.4);
  assert.equal(qaF1Score('', 'cat'), 0);
  assert.equal(qaF1Score('dog', 'cat'), 0);
  // vs "paris france": P = 1, R = 1/2, F1 = 2/3
  close(scorePrediction('Paris', ['London', 'paris France'], { metric: 'f1' }), 200 / 3, 1e-9);
  assert.equal(exactMatch('The Paris.', 'paris'), 1);
  assert.equal(scorePrediction('Paris, France', ['paris'], { metric: 'accuracy' }), 0);
});

test('RULER string_match_all and string_match_part', () => {
  close(stringMatchAll('The numbers are 123 and 456', ['123', '456', '789']), 2 / 3);
  assert.equal(stringMatchAll('ABC-def', ['abc-DEF']), 1);
  assert.equal(stringMatchAll('', ['x']), 0);
  assert.equal(stringMatchPart('only 456 here', ['123', '456']), 1);
  assert.equal(stringMatchPart('none', ['123', '456']), 0);
  assert.equal(rulerPostprocess('  ab\tc\x01d \n'), 'ab\nc\nd');
  close(scorePrediction(' 123, 789 ', ['123', '456', '789', '000'], { metric: 'string_match_all' }), 50);
  assert.equal(scorePrediction('no', ['123'], { metric: 'string_match_part' }), 0);
});

test('ROUGE-L (rouge package, summary level): union LCS over sentences, set counts', () => {
  // one sentence each; LCS words {the, cat, on, mat} = 4; m = n = 5 distinct words
  close(rougeLScore('the cat sat on the mat', 'the cat is on the mat'), rougeF(4 / 5, 4 / 5));
  // sentence pairs: (a c | a b) -> a, (a c | c d) -> c, (b d | a b) -> b, (b d | c d) -> d: union 4 of 4
  close(rougeLScore('a b. c d', 'a c. b d'), rougeF(1, 1));
  // a trailing ". " leaves an empty word in the hypothesis: n = |{cat, sat, ""}| = 3
  close(rougeLScore('cat sat. ', 'cat sat'), rougeF(2 / 3, 1));
  // empty hypothesis: the package raises, LongBench scores 0
  assert.equal(rougeLScore('', 'cat'), 0);
  assert.equal(rougeLScore('...', 'cat'), 0);
  assert.equal(rougeLScore('cat', ''), 0);
});

test('ROUGE-L walks the LCS back like _recon_lcs (ties move left), which changes the union', () => {
  assert.deepEqual(reconLcs(['a', 'b'], ['b', 'a']), ['b']);
  // ref [a b]; hyp sentences [b a] -> {b}, [a] -> {a}: union 2 of 2 distinct words
  close(rougeLScore('b a. a', 'a b'), rougeF(1, 1));
});

test('ROUGE-1 of the same package', () => {
  // sets {the, cat, sat} vs {the, cat}: overlap 2, P = 2/3, R = 1
  close(rouge1Score('the cat sat', 'the cat'), rougeF(2 / 3, 1));
  assert.equal(rouge1Score('', 'the cat'), 0);
  close(scorePrediction('x', ['the cat', 'the cat sat'], { metric: 'rouge_1' }), 0);
});

test('difflib SequenceMatcher ratio and fuzz.ratio', () => {
  // matching block "bcd": 2 * 3 / 8
  close(new SequenceMatcher('abcd', 'bcde').ratio(), 0.75);
  close(new SequenceMatcher('this is a test', 'this is a test!').ratio(), 28 / 29);
  assert.equal(fuzzRatio('this is a test', 'this is a test!'), 97);
  // 2 * 1 / 16 = 0.125 -> 12.5 -> 12 (round half to even)
  assert.equal(fuzzRatio('abcdefgh', 'aijklmno'), 12);
  assert.equal(fuzzRatio('', ''), 100);
  assert.equal(fuzzRatio('abc', ''), 0);
  // autojunk: "x" occurs 250 > 250/100 + 1 times in b, so it cannot start a match
  assert.equal(new SequenceMatcher('yx', 'x'.repeat(250)).ratio(), 0);
  close(new SequenceMatcher('yx', 'x'.repeat(199)).ratio(), 2 / 201);
});

test('code_sim_score: first line free of comments and fences, fuzz.ratio / 100', () => {
  // "return x + 1" vs "return x+1": blocks "return x", "+", "1" = 10 of 22 -> 90.9 -> 91
  close(codeSimScore('\n# comment\nreturn x + 1\nfoo', 'return x+1'), 0.91);
  assert.equal(codeSimScore('// only comments\n```', 'x = 1'), 0);
  close(scorePrediction('', ['a = 1'], { metric: 'edit_sim' }), 0);
});

test('classification_score, count_score, retrieval_score', () => {
  const classes = ['Location', 'Human being', 'Description', 'Entity'];
  assert.equal(classificationScore('Human being', 'Human being', classes), 1);
  assert.equal(classificationScore('Location or Human being', 'Human being', classes), 0.5);
  assert.equal(classificationScore('Entity', 'Human being', classes), 0);
  // removal while iterating skips "b": ["a b", "b"] remain
  assert.equal(classificationScore('a b', 'a b', ['a b', 'a', 'b']), 0.5);
  close(countScore('There are 3 paragraphs, not 4 or 3', '3'), 2 / 3);
  assert.equal(countScore('none', '3'), 0);
  assert.equal(retrievalScore('Paragraph 12 and 3', 'Paragraph 12'), 0.5);
  assert.equal(retrievalScore('Paragraph 12', 'no id'), 0);
  close(scorePrediction('Entity', ['Human being', 'Entity'], { metric: 'classification', allClasses: classes }), 100);
});

test('needle recall and first-line scoring', () => {
  // needle words {eat, a, sandwich, in, dolores, park}; found eat, a, sandwich
  close(needleRecall('You should eat a sandwich.', 'Eat a sandwich in Dolores Park.'), 0.5);
  assert.equal(needleRecall('', 'Eat a sandwich'), 0);
  assert.equal(scorePrediction('\nParis\nLondon', ['London'], { metric: 'f1', firstLine: true }), 0);
  assert.equal(scorePrediction('\nParis\nLondon', ['London'], { metric: 'f1' }) > 0, true);
});

test('unknown metric names are user errors', () => {
  assert.throws(
    () => parseMetric('bleu', 'cases.jsonl:3'),
    (e: unknown) => e instanceof KvevictError && /cases\.jsonl:3: unknown metric "bleu"/.test(e.message),
  );
  assert.equal(parseMetric('rouge_l', 'x'), 'rouge_l');
});
