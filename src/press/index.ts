/** KV-cache eviction: methods composed of a query source, a scorer and a budget allocator. */
export type {
  KeepPlan,
  Press,
  PrefillRun,
  PressModel,
  CaptureRequest,
  Captured,
  QueryBlock,
  QuerySource,
  Scorer,
  Allocator,
  HeadScores,
} from './types.js';
export {
  makePress,
  parsePress,
  pressFromSpec,
  withModelFiles,
  modelFileFor,
  optionsOf,
  optionSpecsOf,
  describePress,
  pressHelp,
  PRESS_NAMES,
  WRAPPABLE,
  type PressOptions,
  type PressSpec,
} from './registry.js';
export type { Method, Wrapper, Composition } from './method.js';
export type { OptionSpec } from './option-spec.js';
export { resolveBudget, type BudgetSpec } from './budget-spec.js';
export { ScorePress } from './score-press.js';
export { AttentionScorer } from './scorers/attention.js';
export { WindowQueries } from './queries/window.js';
export { LookaheadQueries } from './queries/lookahead.js';
export { PrefillRecorder, mergeCaptures } from './capture.js';
export { selectCache, keepAllPlan } from './select-cache.js';
export { SoftTokenQueries } from './queries/soft-tokens.js';
export { loadSoftTokens, saveSoftTokens, modelHash, checkSoftTokensFor, type SoftTokens } from './queries/soft-tokens-file.js';
export { DEFAULT_SOFT_FILE } from './methods/judgeq.js';
export { DEFAULT_LOOKAHEAD_FILE } from './methods/lookaheadkv.js';
export { loadLookaheadModules, saveLookaheadModules, type LookaheadModules } from './queries/lookahead-adapter-file.js';
