import type { ResultRow } from '../../src/eval/results.js';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer, makeByteTokenizerConfig, makeByteTokenizerJson } from '../../src/model/tokenizer.js';

/** A byte-level tokenizer with the ChatML template (one token per UTF-8 byte), as the reference model has. */
export function byteTokenizer(): Tokenizer {
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  return new Tokenizer(
    makeByteTokenizerJson(specials) as Record<string, unknown>,
    makeByteTokenizerConfig(specials) as Record<string, unknown>,
  );
}

/** A fresh temporary folder. */
export function tempDir(prefix = 'kvevict-eval-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Write lines to DIR/name and return the path. */
export function writeLines(dir: string, name: string, lines: string[]): string {
  const p = join(dir, name);
  writeFileSync(p, lines.join('\n') + '\n');
  return p;
}

/**
 * A results folder written by hand, as `kvevict eval` writes it: needle rows over lengths x depths and a
 * RULER task, methods full / snapkv / streaming at budgets 64 and 128, both modes, and one kept file.
 * Scores are chosen so that means can be checked by hand: full 100; snapkv 50 at 64, 100 at 128 on niah;
 * streaming 0 everywhere; ruler:vt half of full's score for the compressed methods.
 */
export function writeSyntheticResults(dir: string): void {
  mkdirSync(join(dir, 'kept'), { recursive: true });
  const rows: object[] = [];
  const modes = ['query-aware', 'query-agnostic'];
  const fid = (press: string, budget: number) =>
    press === 'full'
      ? { oracle_hit: 100, attention_recall: 100, top1: 100, kl: 0 }
      : {
          oracle_hit: press === 'snapkv' ? budget / 2 : budget / 4,
          attention_recall: press === 'snapkv' ? 40 + budget / 8 : 20,
          top1: 90,
          kl: 0.1,
        };
  const row = (task: string, id: string, press: string, budget: number, mode: string, score: number, meta: object) => ({
    key: JSON.stringify([task, id, press, {}, budget, mode]),
    model: 'synthetic',
    dataset: task,
    task,
    case: id,
    press,
    options: {},
    budget,
    mode,
    prompt_tokens: 300,
    compressible_tokens: mode === 'query-aware' ? 300 : 280,
    truncated_tokens: 0,
    prediction: 'p',
    answers: ['a'],
    metric: 'needle_recall',
    score,
    fidelity: fid(press, budget),
    cache_bytes: 1,
    full_cache_bytes: 2,
    timings: { prefill_ms: 1, compress_ms: 1, decode_ms: 1 },
    meta,
  });
  for (const mode of modes) {
    for (const press of ['full', 'snapkv', 'streaming']) {
      for (const budget of [64, 128]) {
        for (const length of [200, 300]) {
          for (const depth of [0, 50, 100]) {
            const score = press === 'full' ? 100 : press === 'snapkv' ? (budget === 64 ? 50 : 100) : 0;
            rows.push(row('niah', `niah-L${length}-D${depth}`, press, budget, mode, score, { length, depth }));
          }
        }
        for (let i = 0; i < 2; i++) rows.push(row('ruler:vt', `vt-${i}`, press, budget, mode, press === 'full' ? 80 : 40, { length: 300 }));
      }
    }
  }
  writeFileSync(join(dir, 'results.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const tokens = Array.from({ length: 300 }, (_, i) => (i % 10 === 9 ? '.\n' : `w${i} `));
  const plan = (budget: number, shift: number) =>
    [0, 1].map((l) => [0, 1].map((h) => Array.from({ length: budget }, (_, j) => (j * 2 + shift + l + h) % 300).sort((a, b) => a - b)));
  writeFileSync(
    join(dir, 'kept', 'niah__niah-L300-D50__query-aware.json'),
    JSON.stringify({
      task: 'niah',
      case: 'niah-L300-D50',
      mode: 'query-aware',
      tokens,
      layers: 2,
      kvHeads: 2,
      settings: [
        { press: 'snapkv', options: {}, budget: 64, kept: plan(64, 0) },
        {
          press: 'streaming',
          options: {},
          budget: 64,
          kept: [0, 1].map(() => [0, 1].map(() => [0, 1, 2, 3, ...Array.from({ length: 60 }, (_, j) => 240 + j)])),
        },
      ],
    }),
  );
}

/** A result row with every field a summary reads; `fields` overrides (press, budget, mode, dataset, score, fidelity...). */
export function resultRow(fields: Partial<ResultRow> & Pick<ResultRow, 'press' | 'budget' | 'case' | 'score'>): ResultRow {
  const dataset = fields.dataset ?? 'niah';
  return {
    key: `${fields.press}-${fields.budget}-${fields.mode ?? 'query-aware'}-${dataset}-${fields.case}-${fields.score}`,
    model: 'm',
    dataset,
    task: dataset,
    options: {},
    mode: 'query-aware',
    prompt_tokens: 100,
    compressible_tokens: 90,
    truncated_tokens: 0,
    prediction: '',
    answers: [],
    metric: 'string_match_all',
    fidelity: { oracle_hit: null, attention_recall: null, top1: null, kl: null },
    cache_bytes: 0,
    full_cache_bytes: 0,
    timings: { prefill_ms: 0, compress_ms: 0, decode_ms: 0 },
    meta: {},
    ...fields,
  } as ResultRow;
}
