import type { Scoring } from './metrics/index.js';

/**
 * One evaluation case. The user turn is `before + context + after`: `before + context` is what the
 * query-agnostic mode compresses, `after` (which holds the question) is fed after compression.
 */
export interface EvalCase {
  /** unique within a dataset; with the method, options, budget and mode it keys a result row */
  id: string;
  /** grouping for tables and charts: "niah", "ruler:vt", "longbench:multi_news", "plain:<file>" */
  task: string;
  /** instructions before the context */
  before: string;
  /** the long part */
  context: string;
  /** everything after the context in the user turn: the question and any instructions around it */
  after: string;
  /** the question alone, for display */
  question: string;
  /** gold answers (several: max over them, or all of them for string_match_all) */
  answers: string[];
  scoring: Scoring;
  maxNewTokens: number;
  /** wrap the user turn in the tokenizer's chat template (when it has one) */
  chat: boolean;
  /** text the answer is forced to start with (RULER's answer prefix), after the assistant turn opens */
  answerPrefix: string;
  /** descriptive figures kept in result rows: needle depth and length, source line, ... */
  meta: Record<string, string | number | boolean>;
}

/** What a dataset loader returns: the cases, and one line per malformed input line that was skipped. */
export interface LoadedDataset {
  /** name as given on the command line */
  name: string;
  cases: EvalCase[];
  problems: string[];
}
