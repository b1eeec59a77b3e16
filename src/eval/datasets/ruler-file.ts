import { basename, dirname } from 'node:path';
import { KvevictError } from '../../errors.js';
import type { EvalCase, LoadedDataset } from '../case.js';
import { LineError, mapLines, needString, needStrings, readJsonl } from './jsonl.js';
import { RULER_FAMILIES, RULER_TASK_NAMES, rulerMetric, rulerTask } from './ruler/tasks.js';

/** The RULER task a file holds, from its name: "<task>[.<length>].jsonl" or "<task>/validation.jsonl". */
export function rulerTaskOfFile(file: string): string {
  let stem = basename(file).replace(/\.jsonl$/, '');
  if (stem === 'validation' || stem === 'test') stem = basename(dirname(file));
  stem = stem.replace(/\.\d+$/, '');
  if (!RULER_TASK_NAMES.includes(stem)) {
    throw new KvevictError(
      `${file}: cannot tell the RULER task from the file name (expected <task>[.<length>].jsonl; tasks: ${RULER_TASK_NAMES.join(', ')})`,
    );
  }
  return stem;
}

/**
 * Split a RULER input into context and question: the question is the last line (RULER templates put
 * a newline right before it). An answer prefix left inside the input (files that merged it) is found
 * the way RULER finds it, by the last occurrence of its first 10 characters, and moved out.
 */
export function splitRulerInput(input: string, answerPrefixHead: string): { context: string; after: string; answerPrefix: string } {
  let text = input;
  let answerPrefix = '';
  const lastNl = text.lastIndexOf('\n');
  const p = text.lastIndexOf(answerPrefixHead);
  if (p > lastNl) {
    answerPrefix = text.slice(p);
    text = text.slice(0, p);
  }
  const nl = text.lastIndexOf('\n');
  if (nl < 0) return { context: '', after: text, answerPrefix };
  return { context: text.slice(0, nl), after: text.slice(nl), answerPrefix };
}

/** A RULER JSONL file (keys index, input, outputs, length; answer_prefix when RULER wrote it). */
export function loadRulerFile(file: string, name = file): LoadedDataset {
  const taskName = rulerTaskOfFile(file);
  const spec = rulerTask(taskName, file);
  const fam = RULER_FAMILIES[spec.family];
  const seen = new Set<string>();
  const { items, problems } = mapLines(file, readJsonl(file), (o, line) => {
    const input = needString(o, 'input');
    const outputs = needStrings(o, 'outputs');
    const idx = o.index;
    const id = typeof idx === 'number' || typeof idx === 'string' ? `${taskName}-${idx}` : `${taskName}-line${line}`;
    if (seen.has(id)) throw new LineError(`duplicate index ${String(idx)}`);
    seen.add(id);
    const split = splitRulerInput(input, fam.answerPrefix.slice(0, 10));
    const givenPrefix = o.answer_prefix;
    const c: EvalCase = {
      id,
      task: `ruler:${taskName}`,
      before: '',
      context: split.context,
      after: split.after,
      question: split.after.trim(),
      answers: outputs,
      scoring: { metric: rulerMetric(spec.family) },
      maxNewTokens: fam.tokensToGenerate,
      chat: true,
      answerPrefix: typeof givenPrefix === 'string' ? givenPrefix : split.answerPrefix,
      meta: { source: `${basename(file)}:${line}`, ...(typeof o.length === 'number' ? { length: o.length } : {}) },
    };
    return c;
  });
  return { name, cases: items, problems };
}
