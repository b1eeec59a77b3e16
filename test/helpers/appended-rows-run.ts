import { writeRandomModelDir, tinyRawConfig } from './random-model.js';

/** A tiny random model folder and the options of a few-second Judge Q / LookaheadKV training run on it. */
export function tinyTrainingRun(modelDir: string) {
  writeRandomModelDir(modelDir, tinyRawConfig('llama', { eos_token_id: 258 }), { seed: 5, scale: 0.1 });
  return {
    modelDir,
    softTokens: 4,
    steps: 4,
    lr: 0.02,
    warmup: 1,
    minLrRatio: 0.1,
    batch: 2,
    seed: 3,
    trainPrompts: 4,
    heldOutPrompts: 2,
    minLength: 48,
    maxLength: 160,
    maxResponse: 12,
    lengthWeight: false,
    initFrom: null,
    evalEvery: 2,
    checkpointEvery: 1,
    timeLimit: 0,
    quiet: true,
    resume: false,
  };
}
