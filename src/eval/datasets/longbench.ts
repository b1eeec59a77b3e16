import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { KvevictError } from '../../errors.js';
import { sharedData } from '../../paths.js';
import type { EvalCase, LoadedDataset } from '../case.js';
import { LineError, mapLines, needString, needStrings, optString, readJsonl, type JsonObject } from './jsonl.js';
import { LONGBENCH_TASKS, LONGBENCH_TASK_NAMES } from './longbench-config.js';
import { fill } from './ruler/tasks.js';

/** "multi_news" or a path: the file to read (a bare name is looked up in ../shared/data/longbench). */
export function resolveLongBenchFile(spec: string): string {
  if (existsSync(spec)) return spec;
  const shared = join(sharedData, 'longbench', spec.endsWith('.jsonl') ? spec : `${spec}.jsonl`);
  if (existsSync(shared)) return shared;
  throw new KvevictError(`${spec}: LongBench file not found (a path, or a name under ${join(sharedData, 'longbench')})`);
}

/** The LongBench task of a file: "<task>.jsonl" or LongBench-E's "<task>_e.jsonl". */
export function longBenchTaskOfFile(file: string): string | null {
  const stem = basename(file).replace(/\.jsonl$/, '');
  if (LONGBENCH_TASK_NAMES.includes(stem)) return stem;
  const e = stem.replace(/_e$/, '');
  return LONGBENCH_TASK_NAMES.includes(e) ? e : null;
}

function allClasses(o: JsonObject): string[] | undefined {
  const v = o.all_classes;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new LineError('"all_classes" must be a list of strings or null');
  return v as string[];
}

/**
 * A LongBench JSONL file (keys input, context, answers, length, dataset, language, all_classes, _id),
 * with the task's official prompt template, generation length and metric. The row's "dataset" names
 * the task; the file name does when rows lack it.
 */
export function loadLongBench(spec: string, name = `longbench:${spec}`): LoadedDataset {
  const file = resolveLongBenchFile(spec);
  const fileTask = longBenchTaskOfFile(file);
  const seen = new Set<string>();
  const { items, problems } = mapLines(file, readJsonl(file), (o, line) => {
    const dataset = optString(o, 'dataset') || fileTask;
    if (!dataset)
      throw new LineError(`no "dataset" field and the file name names no LongBench task (tasks: ${LONGBENCH_TASK_NAMES.join(', ')})`);
    const t = LONGBENCH_TASKS[dataset];
    if (!t) throw new LineError(`unknown LongBench task "${dataset}" (tasks: ${LONGBENCH_TASK_NAMES.join(', ')})`);
    const context = needString(o, 'context');
    const input = optString(o, 'input');
    const answers = needStrings(o, 'answers');
    const rawId = optString(o, '_id') || `line${line}`;
    const id = `${dataset}-${rawId}`;
    if (seen.has(id)) throw new LineError(`duplicate _id "${rawId}"`);
    seen.add(id);
    const [pre, post] = t.prompt.split('{context}');
    const classes = allClasses(o);
    const c: EvalCase = {
      id,
      task: `longbench:${dataset}`,
      before: fill(pre, { input }),
      context,
      after: fill(post, { input }),
      question: input,
      answers,
      scoring: { metric: t.metric, ...(classes ? { allClasses: classes } : {}), ...(t.firstLine ? { firstLine: true } : {}) },
      maxNewTokens: t.maxGen,
      chat: !t.noChat,
      answerPrefix: '',
      meta: { source: `${basename(file)}:${line}`, ...(typeof o.length === 'number' ? { length: o.length } : {}) },
    };
    return c;
  });
  return { name, cases: items, problems };
}
