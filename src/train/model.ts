import type { ModelConfig } from '../model/config.js';
import { ropeTables } from '../model/config.js';
import { Tape } from '../autograd/tape.js';
import { Tensor } from '../autograd/tensor.js';
import { linear } from '../autograd/ops/linear.js';
import { embedding } from '../autograd/ops/embedding.js';
import { rmsnorm } from '../autograd/ops/rmsnorm.js';
import { rope } from '../autograd/ops/rope.js';
import { attention, type SequenceSpan } from '../autograd/ops/attention.js';
import { swiglu } from '../autograd/ops/swiglu.js';
import { add } from '../autograd/ops/add.js';
import type { ModelParams } from './params.js';

/** A packed batch: token ids of several sequences one after another, each causal on its own. */
export interface PackedInput {
  ids: Int32Array;
  /** absolute position of each row (0 at the start of each sequence) */
  positions: Int32Array;
  spans: SequenceSpan[];
}

/** The Llama forward pass on the autograd tape (training and gradient checks). */
export class TrainModel {
  private rope: { cos: Float32Array; sin: Float32Array };

  constructor(
    readonly cfg: ModelConfig,
    readonly params: ModelParams,
  ) {
    this.rope = ropeTables(cfg, cfg.maxPositions);
  }

  /** Final hidden states [rows, hidden] after the last norm. */
  hidden(tape: Tape | null, input: PackedInput): Tensor {
    const cfg = this.cfg,
      p = this.params;
    for (let r = 0; r < input.positions.length; r++) {
      if (input.positions[r] >= cfg.maxPositions)
        throw new Error(`internal error: position ${input.positions[r]} beyond max_position_embeddings ${cfg.maxPositions}`);
    }
    const shape = { heads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: cfg.headDim, scale: 1 / Math.sqrt(cfg.headDim) };
    let x = embedding(tape, p.embed, input.ids);
    for (const l of p.layers) {
      const h = rmsnorm(tape, x, l.inputNorm, cfg.rmsNormEps);
      const q = rope(tape, linear(tape, h, l.q), cfg.numHeads, cfg.headDim, input.positions, this.rope.cos, this.rope.sin);
      const k = rope(tape, linear(tape, h, l.k), cfg.numKvHeads, cfg.headDim, input.positions, this.rope.cos, this.rope.sin);
      const v = linear(tape, h, l.v);
      const a = attention(tape, q, k, v, input.spans, shape);
      x = add(tape, x, linear(tape, a, l.o));
      const h2 = rmsnorm(tape, x, l.postNorm, cfg.rmsNormEps);
      const m = swiglu(tape, linear(tape, h2, l.gate), linear(tape, h2, l.up));
      x = add(tape, x, linear(tape, m, l.down));
    }
    return rmsnorm(tape, x, p.finalNorm, cfg.rmsNormEps);
  }

  /** Logits [rows, vocab] through the tied LM head. */
  logits(tape: Tape | null, input: PackedInput): Tensor {
    return linear(tape, this.hidden(tape, input), this.params.embed);
  }
}
