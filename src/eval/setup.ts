import { resolve } from 'node:path';
import { DEFAULT_KV_DTYPE, type KvDtype } from '../cache/kv-cache.js';
import { KvevictError } from '../errors.js';
import { LlamaModel } from '../model/llama.js';
import { loadModelDir } from '../model/load.js';
import { defaultModelDir } from '../paths.js';
import type { LoadedDataset } from './case.js';
import { loadDataset, type DatasetOptions } from './datasets/index.js';
import { ModelEngine } from './model-engine.js';
import { runGrid, type RunGridResult } from './runner.js';
import type { Setting } from './settings.js';
import type { TextSink } from './progress.js';

/**
 * Load a model folder for evaluation; the embedded reference model is recognised by its folder. With
 * `chunkCompress`, every method compresses its prompt chunk by chunk; `kvDtype` is the cache's storage (rows
 * key on both: a results folder holds one way of compressing and one cache dtype).
 */
export function loadEngine(
  dir: string = defaultModelDir,
  chunkCompress = 0,
  kvDtype: KvDtype = DEFAULT_KV_DTYPE,
): { engine: ModelEngine; embedded: boolean } {
  const m = loadModelDir(dir);
  const lm = new LlamaModel(m.config, m.weights);
  // the f32 cache was the only one before the f16 one came: its rows keep their keys
  const fingerprint =
    ModelEngine.fingerprintOf(dir) +
    (chunkCompress > 0 ? `:chunk-compress=${chunkCompress}` : '') +
    (kvDtype === 'f32' ? '' : `:kv-dtype=${kvDtype}`);
  return {
    engine: new ModelEngine(lm, m.tokenizer, ModelEngine.nameOf(dir), { fingerprint, chunkCompress, kvDtype }),
    embedded: resolve(dir) === resolve(defaultModelDir),
  };
}

export interface EvalJob {
  datasets: string[];
  grid: Setting[];
  outDir: string;
  modelDir?: string;
  samples?: number;
  seed: number;
  lengths?: number[];
  depths?: number[];
  needle?: { needle: string; question: string };
  qaFile?: string;
  fidelity?: boolean;
  /** answer length of every case, instead of each dataset's */
  maxNewTokens?: number;
  /** compress every prompt chunk by chunk (CompressOptions.chunkCompress) */
  chunkCompress?: number;
  /** the cache's storage (default f16) */
  kvDtype?: KvDtype;
  progress: TextSink;
  log: TextSink;
}

/** Run the grid over each dataset in turn (loading the model unless given); the rows of all of them come back. */
export async function runEvalJob(
  job: EvalJob,
  loaded?: { engine: ModelEngine; embedded: boolean },
): Promise<{ results: RunGridResult[]; datasets: LoadedDataset[] }> {
  if (job.datasets.length === 0) throw new KvevictError('eval: --dataset is required');
  const { engine, embedded } = loaded ?? loadEngine(job.modelDir, job.chunkCompress, job.kvDtype);
  const opts: DatasetOptions = {
    tokenizer: engine.tokenizer,
    maxContext: engine.maxContext,
    embeddedModel: embedded,
    samples: job.samples,
    seed: job.seed,
    lengths: job.lengths,
    depths: job.depths,
    needle: job.needle,
    qaFile: job.qaFile,
  };
  const datasets = job.datasets
    .map((d) => loadDataset(d, opts))
    .map((ds) =>
      job.maxNewTokens === undefined ? ds : { ...ds, cases: ds.cases.map((c) => ({ ...c, maxNewTokens: job.maxNewTokens! })) },
    );
  const results: RunGridResult[] = [];
  for (const ds of datasets) {
    results.push(
      await runGrid({
        engine,
        dataset: ds,
        grid: job.grid,
        outDir: job.outDir,
        progress: job.progress,
        log: job.log,
        fidelity: job.fidelity,
      }),
    );
  }
  return { results, datasets };
}
