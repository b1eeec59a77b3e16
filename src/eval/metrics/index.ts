import { KvevictError } from '../../errors.js';
import { classificationScore, codeSimScore, countScore, retrievalScore } from './longbench.js';
import { needleRecall } from './needle.js';
import { exactMatch, qaF1Score } from './qa-f1.js';
import { rouge1Score, rougeLScore } from './rouge.js';
import { rulerPostprocess, stringMatchAll, stringMatchPart } from './ruler.js';

/** Metrics allowed in the plain JSONL format's "metric" field. */
export const PLAIN_METRICS = ['string_match_all', 'string_match_part', 'needle_recall', 'rouge_l', 'f1', 'accuracy', 'edit_sim'] as const;

/** Every metric a case can name: the plain format's, then LongBench's own. */
export const METRIC_NAMES = [...PLAIN_METRICS, 'rouge_1', 'classification', 'retrieval', 'count'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

export function isMetricName(s: string): s is MetricName {
  return (METRIC_NAMES as readonly string[]).includes(s);
}

/** How one case is scored. */
export interface Scoring {
  metric: MetricName;
  /** classification tasks: every class name */
  allClasses?: string[];
  /** LongBench trec/triviaqa/samsum/lsht: score only the first line of the prediction */
  firstLine?: boolean;
}

type PairScore = (prediction: string, reference: string, allClasses: readonly string[]) => number;

/** 0..1 scores of one prediction against one reference; the case score is the max over references. */
const PAIR: Record<Exclude<MetricName, 'string_match_all' | 'string_match_part'>, PairScore> = {
  needle_recall: (p, r) => needleRecall(p, r),
  rouge_l: (p, r) => rougeLScore(p, r),
  rouge_1: (p, r) => rouge1Score(p, r),
  f1: (p, r) => qaF1Score(p, r),
  accuracy: (p, r) => exactMatch(p, r),
  edit_sim: (p, r) => codeSimScore(p, r),
  classification: (p, r, c) => classificationScore(p, r, c),
  retrieval: (p, r) => retrievalScore(p, r),
  count: (p, r) => countScore(p, r),
};

/**
 * Score one prediction, 0..100. RULER metrics work on all references at once (string_match_all: the
 * share found; string_match_part: any found) after RULER's clean-up; every other metric takes the
 * maximum over references, as LongBench does.
 */
export function scorePrediction(prediction: string, references: readonly string[], scoring: Scoring): number {
  let pred = prediction;
  if (scoring.firstLine) pred = pred.replace(/^\n+/, '').split('\n')[0];
  if (scoring.metric === 'string_match_all') return 100 * stringMatchAll(rulerPostprocess(pred), references);
  if (scoring.metric === 'string_match_part') return 100 * stringMatchPart(rulerPostprocess(pred), references);
  const fn = PAIR[scoring.metric];
  if (!fn) throw new KvevictError(`unknown metric "${String(scoring.metric)}" (metrics: ${METRIC_NAMES.join(', ')})`);
  let best = 0;
  for (const r of references) best = Math.max(best, fn(pred, r, scoring.allClasses ?? []));
  return 100 * best;
}

/** Parse a metric name given by a user; `where` names the file or option for the error. */
export function parseMetric(name: string, where: string, allowed: readonly MetricName[] = METRIC_NAMES): MetricName {
  if (!isMetricName(name) || !allowed.includes(name))
    throw new KvevictError(`${where}: unknown metric "${name}" (metrics: ${allowed.join(', ')})`);
  return name;
}
