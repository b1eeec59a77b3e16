import { join } from 'node:path';
import { defaultModelDir } from '../../paths.js';
import { pooled, window } from '../common-options.js';
import { defineMethod } from '../method.js';
import { booleanOption, fileOption } from '../option-spec.js';
import { loadLookaheadModules } from '../queries/lookahead-adapter-file.js';
import { LearnedLookaheadScorer } from '../scorers/learned-lookahead.js';

/** The modules delivered for the embedded reference model: the default of `modules`. */
export const DEFAULT_LOOKAHEAD_FILE = join(defaultModelDir, 'lookaheadkv.safetensors');

export const lookaheadkv = defineMethod({
  name: 'lookaheadkv',
  summary: 'LookaheadKV: scores from trained lookahead tokens with LoRA on those tokens only, run after the prompt (`modules` FILE)',
  options: {
    modules: fileOption({
      defaultFile: DEFAULT_LOOKAHEAD_FILE,
      help: "trained LookaheadKV file (default: lookaheadkv.safetensors in the model's folder, else the embedded model's)",
    }),
    ...pooled,
    window: { ...window, kept: (o: Record<string, unknown>) => !o.noWindow },
    noWindow: booleanOption({ help: 'keep no prompt window (w = 0)' }),
  },
  scorer: (o) =>
    new LearnedLookaheadScorer(loadLookaheadModules(o.modules === '' ? DEFAULT_LOOKAHEAD_FILE : o.modules), {
      window: o.noWindow ? 0 : o.window,
      kernel: o.kernel,
      pool: o.pool,
      gqa: o.gqa,
    }),
});
