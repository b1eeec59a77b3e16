import { createHash } from 'node:crypto';
import { KvevictError } from '../../errors.js';
import type { LayerView } from '../../model/types.js';
import { modelWeights } from '../model-weights.js';
import type { CaptureRequest, PrefillRun, PressModel, QueryBlock, QuerySource } from '../types.js';
import { checkSoftTokensFor, type SoftTokens } from './soft-tokens-file.js';

const weightsOf = (model: PressModel) => modelWeights(model, 'Judge Q');

/**
 * Judge Q's queries: the m trained soft embeddings are fed after the prompt at positions L .. L + m - 1 (their
 * keys and values join the prompt cache for that one forward pass, so each soft row attends to the whole
 * prompt and to the soft rows before it), each layer's post-RoPE soft queries are recorded, and the soft
 * entries are deleted again (`truncateFrom(L)`), so the prompt cache leaves exactly as it came and decoding
 * continues at position L. Every soft row sees every prompt key.
 */
export class SoftTokenQueries implements QuerySource {
  readonly name = 'soft-tokens';
  readonly shareKey: string;

  constructor(readonly soft: SoftTokens) {
    const bytes = new Uint8Array(soft.embeddings.buffer, soft.embeddings.byteOffset, soft.embeddings.byteLength);
    this.shareKey = `soft-tokens ${createHash('sha256').update(bytes).digest('hex')}`;
  }

  capture(): CaptureRequest {
    return {};
  }

  queries(run: PrefillRun): QueryBlock[] {
    const model = run.model;
    const cfg = model.config;
    checkSoftTokensFor(this.soft, cfg, weightsOf(model));
    const { numLayers: NL, numHeads: H, headDim: d } = cfg;
    const m = this.soft.count;
    const next = run.startPosition + run.promptLength;
    if (next + m > cfg.maxPositions) {
      throw new KvevictError(
        `judgeq: the prompt (${run.promptLength} tokens) and ${m} soft tokens pass max_position_embeddings ${cfg.maxPositions}`,
      );
    }
    const rowSize = H * d;
    const positions = new Int32Array(m);
    for (let i = 0; i < m; i++) positions[i] = next + i;
    const recorded = Array.from({ length: NL }, () => new Float32Array(m * rowSize));
    const seen = new Int32Array(NL);
    const observer = (view: LayerView): void => {
      const rows = view.positions.length;
      recorded[view.layer].set(view.queries.subarray(0, rows * rowSize), seen[view.layer] * rowSize);
      seen[view.layer] += rows;
    };
    try {
      model.forward({ embeddings: this.soft.embeddings, positions, cache: run.cache, observer, logits: 'none' });
    } finally {
      run.cache.truncateFrom(next);
    }
    return recorded.map((queries) => ({ queries, positions, causal: false }));
  }
}
