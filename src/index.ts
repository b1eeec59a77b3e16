/**
 * kvevict as a library: load a Hugging Face Llama-family model folder, build an eviction method ("press"),
 * prefill and compress a prompt, answer on the compressed cache; evaluate grids of methods and budgets,
 * write reports, train the embedded model and Judge Q soft tokens.
 *
 *   const m = loadModelDir(defaultModelDir);
 *   const model = new LlamaModel(m.config, m.weights);
 *   const r = await runQueryAware(model, m.tokenizer.encode(prompt), makePress('laq++', { budget: 256 }), { maxNewTokens: 32 });
 */

// errors and paths
export { KvevictError } from './errors.js';
export { defaultModelDir, repoRoot, sharedData } from './paths.js';

// kernels: native (OpenBLAS addon) when built, else TypeScript
export {
  kernels,
  jsKernels,
  loadNative,
  nativeAddonPath,
  packedWeightFloats,
  PACK_STRIP,
  type Kernels,
  type AttendArgs,
  type GemvPart,
  type PackedPart,
} from './kernels/index.js';

// model: config, weights, tokenizer, engine, GGUF
export { loadModelDir, type LoadedModel } from './model/load.js';
export {
  LlamaModel,
  ForwardProfile,
  WEIGHT_FORMATS,
  type ForwardOptions,
  type ForwardSection,
  type LlamaModelOptions,
  type WeightFormat,
} from './model/llama.js';
export { loadConfig, parseConfig, type ModelConfig, type ModelType, type Llama3RopeScaling } from './model/config.js';
export { Tokenizer, type ChatMessage, type EncodeOptions, type ChatTemplateOptions } from './model/tokenizer.js';
export type { DecodeOptions as TokenizerDecodeOptions } from './model/tokenizer.js';
export {
  allocateWeights,
  linearShape,
  loadWeights,
  saveModelDir,
  tensorSlots,
  LINEAR_NAMES,
  type LinearName,
  type SaveModelOptions,
  type TensorSlot,
} from './model/weights.js';
export type { Weights, LayerWeights, LayerView, Observer, ForwardArgs } from './model/types.js';
export { loadGguf, readGguf, writeGguf, type GgufFile, type WriteGgufOptions } from './model/gguf.js';

// KV cache
export { KvCache, HeadCache, KV_DTYPES, DEFAULT_KV_DTYPE, tokenCacheBytes, type KvDtype } from './cache/kv-cache.js';

// generation
export { decode } from './generate/decode.js';
export type { DecodeStep, DecodeResult, DecodeOptions } from './generate/decode.js';
export {
  argmax,
  greedy,
  makeSampler,
  validateSampling,
  topLogprobs,
  type Sampler,
  type SamplingOptions,
  type TopEntry,
} from './generate/sampling.js';
export {
  prefill,
  compress,
  generateFromTokens,
  prefillAndCompress,
  answer,
  runQueryAware,
  runQueryAgnostic,
  runWithMode,
  prefillSteps,
  PIPELINE_MODES,
  type PrefillOptions,
  type Prefilled,
  type GenerateOptions,
  type GenerateResult,
  type CompressOptions,
  type CompressedContext,
  type DecodeOpts,
  type AnswerResult,
  type RunResult,
  type PipelineMode,
} from './generate/pipeline.js';
export {
  saveCompressedContext,
  loadCompressedContext,
  CONTEXT_FORMAT,
  type ContextOrigin,
  type SavedContext,
} from './generate/context-file.js';

// the OpenAI-compatible server, in-process (kvevict serve is a thin CLI over it)
export { Server, type ServerOptions } from './server/server.js';
export { Engine, PREFILL_SLICE, QueueFullError, type EngineOptions, type JobSpec, type JobResult } from './server/engine.js';
export { MemoryLru, DiskStore, RedisStore, contextKey, type SharedStore } from './server/stores.js';
export { RedisClient } from './server/redis.js';

// eviction methods ("presses"): the registry, the parts methods are made of, Judge Q's soft-token files
export * from './press/index.js';

// evaluation: datasets, grid runner, metrics, fidelity, summaries, report
export type { EvalCase, LoadedDataset } from './eval/case.js';
export { loadDataset, DATASET_FORMS, type DatasetOptions } from './eval/datasets/index.js';
export {
  assemblePrompt,
  preparePrompt,
  chatWrapper,
  truncateMiddle,
  type PromptParts,
  type PreparedPrompt,
  type TextTokenizer,
} from './eval/prompt.js';
export { MODES, makeGrid, parseMode, parseBudgets, pressLabel, type Mode, type Setting } from './eval/settings.js';
export { runGrid, type RunGridOptions, type RunGridResult } from './eval/runner.js';
export { runEvalJob, loadEngine, type EvalJob } from './eval/setup.js';
export { ModelEngine } from './eval/model-engine.js';
export type { EvalEngine } from './eval/engine.js';
export { readRows, RESULTS_FILE, type ResultRow, type FidelityFigures } from './eval/results.js';
export { summarize, formatTable, formatMarkdownTable, formatMarkdownPivot, jsonSummary, type SummaryRow } from './eval/summary.js';
export { METRIC_NAMES, scorePrediction, parseMetric, type MetricName, type Scoring } from './eval/metrics/index.js';
export { attentionMass, attentionRecall, oracleHitRate, oracleTopK, outputAgreement, type FidelityTrace } from './eval/fidelity.js';
export { writeReport, type ReportResult } from './eval/report/index.js';

// training: the embedded model, Judge Q soft tokens and LookaheadKV modules
export { pretrain, DEFAULT_PRETRAIN, type PretrainOptions, type PretrainResult } from './train/pretrain.js';
export {
  trainJudgeq,
  trainLookaheadkv,
  DEFAULT_RECIPE as DEFAULT_JUDGEQ_RECIPE,
  DEFAULT_LOOKAHEADKV_RECIPE,
  type LookaheadkvRecipe,
  type JudgeqRecipe,
  type JudgeqTrainOptions,
  type JudgeqTrainResult,
} from './train/judgeq/train.js';
