import { basename } from 'node:path';
import type { EvalCase, LoadedDataset } from '../case.js';
import { PLAIN_METRICS, parseMetric, type MetricName } from '../metrics/index.js';
import { LineError, mapLines, needString, needStrings, optString, readJsonl } from './jsonl.js';

/** Default scoring of a plain case without "metric": any gold answer contained in the output. */
export const PLAIN_DEFAULT_METRIC: MetricName = 'string_match_part';
export const PLAIN_MAX_NEW_TOKENS = 64;

/**
 * The plain JSONL format, one case a line:
 * {"id": string, "context": string, "question": string, "answers": string[], "metric"?: string, "max_new_tokens"?: integer}.
 * The prompt is the context, a blank line, then the question, in the chat template.
 */
export function loadPlain(file: string, name = file): LoadedDataset {
  const task = `plain:${basename(file).replace(/\.jsonl$/, '')}`;
  const seen = new Set<string>();
  const { items, problems } = mapLines(file, readJsonl(file), (o) => {
    const id = needString(o, 'id');
    if (id === '') throw new LineError('"id" is empty');
    if (seen.has(id)) throw new LineError(`duplicate id "${id}"`);
    const context = needString(o, 'context');
    const question = needString(o, 'question');
    const answers = needStrings(o, 'answers');
    const metricName = optString(o, 'metric');
    let metric = PLAIN_DEFAULT_METRIC;
    if (metricName !== '') {
      try {
        metric = parseMetric(metricName, 'metric', PLAIN_METRICS);
      } catch (e) {
        throw new LineError((e as Error).message);
      }
    }
    const mnt = o.max_new_tokens;
    if (mnt !== undefined && mnt !== null && !(typeof mnt === 'number' && Number.isInteger(mnt) && mnt >= 1 && mnt <= 1 << 20)) {
      throw new LineError('"max_new_tokens" must be a positive integer');
    }
    seen.add(id);
    const c: EvalCase = {
      id,
      task,
      before: '',
      context,
      after: `\n\n${question}`,
      question,
      answers,
      scoring: { metric },
      maxNewTokens: typeof mnt === 'number' ? mnt : PLAIN_MAX_NEW_TOKENS,
      chat: true,
      answerPrefix: '',
      meta: {},
    };
    return c;
  });
  return { name, cases: items, problems };
}
