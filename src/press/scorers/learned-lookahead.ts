import { constant } from '../../autograd/tensor.js';
import { KvevictError } from '../../errors.js';
import { AppendedRows, type Lora } from '../../model/appended-rows.js';
import { modelWeights } from '../model-weights.js';
import type { Weights } from '../../model/types.js';
import { reduceHeads, type GqaReduce } from '../gqa.js';
import { pool1d, type PoolKind } from '../pool.js';
import { checkLookaheadFor, type LookaheadModules } from '../queries/lookahead-adapter-file.js';
import type { CaptureRequest, HeadScores, PrefillRun, PressModel, Scorer } from '../types.js';

export interface LearnedLookaheadOptions {
  window: number;
  kernel: number;
  pool: PoolKind;
  gqa: GqaReduce;
}

const weightsOf = (model: PressModel) => modelWeights(model, 'LookaheadKV');

/**
 * LookaheadKV's scores: the m trained lookahead embeddings are run after the prompt at positions P .. P + m - 1
 * with their LoRA updates active on those rows only (the prompt's own keys and values are untouched); per
 * layer and query head, the lookahead rows' mean attention on each prompt entry (softmax over the prompt and
 * the lookahead keys seen causally, as in the training loss) is pooled over the candidates and reduced over
 * the GQA group. The lookahead rows' keys and values never enter the cache.
 */
export class LearnedLookaheadScorer implements Scorer {
  readonly name = 'lookaheadkv';
  readonly window: number;
  private readonly checked = new WeakMap<Weights, AppendedRows>();
  private readonly lora: Lora;

  constructor(
    readonly modules: LookaheadModules,
    readonly o: LearnedLookaheadOptions,
  ) {
    this.window = o.window;
    this.lora = {
      rank: modules.rank,
      alpha: modules.alpha,
      layers: modules.lora.map((layer) =>
        Object.fromEntries(
          Object.entries(layer).map(([t, p]) => [
            t,
            { a: constant(p.a, [modules.rank, p.a.length / modules.rank]), b: constant(p.b, [p.b.length / modules.rank, modules.rank]) },
          ]),
        ),
      ),
    };
  }

  capture(): CaptureRequest {
    return {};
  }

  private forwardFor(model: PressModel): AppendedRows {
    const w = weightsOf(model);
    let f = this.checked.get(w);
    if (!f) {
      checkLookaheadFor(this.modules, model.config, w);
      f = new AppendedRows(model.config, w);
      this.checked.set(w, f);
    }
    return f;
  }

  score(run: PrefillRun, window: number): HeadScores {
    const cfg = run.model.config;
    const forward = this.forwardFor(run.model);
    const m = this.modules.count;
    const first = run.startPosition + run.promptLength;
    if (first + m > cfg.maxPositions)
      throw new KvevictError(
        `lookaheadkv: the prompt (${run.promptLength} tokens) and ${m} lookahead tokens pass max_position_embeddings ${cfg.maxPositions}`,
      );
    const rows = constant(this.modules.embeddings, [m, cfg.hiddenSize]);
    const { promptAttention } = forward.run(null, rows, run.cache, { first, lora: this.lora });
    const G = cfg.numHeads / cfg.numKvHeads;
    return promptAttention.map((a) => {
      const n = a.shape[1];
      const candidates = n - window;
      return Array.from({ length: cfg.numKvHeads }, (_, h) => {
        const pooled = Array.from({ length: G }, (_, g) =>
          pool1d(Float64Array.from(a.data.subarray((h * G + g) * n, (h * G + g + 1) * n)), candidates, this.o.kernel, this.o.pool),
        );
        return reduceHeads(pooled, this.o.gqa);
      });
    });
  }
}
