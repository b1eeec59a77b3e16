import { KvevictError, assert } from '../../errors.js';
import { kernels } from '../../kernels/index.js';
import type { LayerView } from '../../model/types.js';
import { sharedResult } from '../shared-work.js';
import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';

/** KVzip's instructions before each reconstruction chunk (kvpress's wording). */
export const REPEAT_FIRST = '\n\nRepeat the previous context exactly.';
export const REPEAT_NEXT = '\n\nRepeat the part of the previous context exactly, starting with';
/** tokens of the previous chunk repeated after REPEAT_NEXT, so the model knows where to start */
const PREVIOUS_TAIL = 8;

/**
 * KVzip (methods.md): the context is fed again after a repeat instruction, chunk by chunk, on a copy of the
 * prompt cache; an entry scores the most any reconstruction query (of the group's query heads) attends to it,
 * the softmax running over the sinks, the chunk's own entries and the reconstruction so far. The first
 * `sinks` positions score 1 (kept first). Query-agnostic: no prompt window, nothing recorded in the prefill.
 * The chunks shrink where the prompt leaves fewer positions than a chunk and its instruction need.
 */
export class ReconstructionScorer implements Scorer {
  readonly name = 'kvzip';
  readonly wholePrompt = 'it reconstructs the whole context from its full cache';
  readonly window = 0;

  constructor(
    readonly chunk: number,
    readonly sinks: number,
  ) {}

  capture(): CaptureRequest {
    return {};
  }

  async score(run: PrefillRun): Promise<HeadScores> {
    // the scores do not depend on the budget: a grid's budgets over one prefill share one reconstruction
    const key = JSON.stringify(['kvzip', this.chunk, this.sinks, run.text?.turnEnd ?? null, run.promptLength]);
    const scores = await sharedResult(run, key, () => this.reconstruct(run));
    return scores.map((layer) => layer.map((head) => head.slice()));
  }

  private async reconstruct(run: PrefillRun): Promise<HeadScores> {
    const text = run.text;
    if (!text)
      throw new KvevictError(
        "kvzip needs the prompt's tokenizer to write its repeat instruction (PrefillRun.text), which this caller did not give",
      );
    const cfg = run.model.config;
    const { numLayers: NL, numHeads: H, numKvHeads: Hkv, headDim: d } = cfg;
    const G = H / Hkv;
    const L = run.promptLength;
    assert(run.startPosition === 0, 'kvzip scores a prompt prefilled from position 0');
    const scores = Array.from({ length: NL }, () => Array.from({ length: Hkv }, () => new Float64Array(L)));
    const encode = (s: string) => Array.from(text.encode(s));
    const first = encode(REPEAT_FIRST);
    const next = encode(REPEAT_NEXT);
    const suffix = encode(text.turnEnd ?? '\n');
    const k = kernels();
    const cache = run.cache.clone();
    let qBlock = new Float32Array(0),
      kBlock = new Float32Array(0),
      sBlock = new Float32Array(0),
      maxBlock = new Float32Array(0);
    // the reconstruction goes after the prompt: where the model's positions run out first, the chunks shrink
    const lead = Math.max(first.length, next.length + PREVIOUS_TAIL) + suffix.length;
    const chunk = Math.min(this.chunk, cfg.maxPositions - L - lead);
    if (chunk < 1) {
      throw new KvevictError(
        `kvzip: the prompt (${L} tokens) leaves no room for a reconstruction chunk before max_position_embeddings ${cfg.maxPositions}`,
      );
    }
    for (let s = 0; s < L; s += chunk) {
      const e = Math.min(L, s + chunk);
      const instruction = s === 0 ? first : [...next, ...Array.from(run.tokens.subarray(Math.max(0, s - PREVIOUS_TAIL), s))];
      const ids = Int32Array.from([...instruction, ...suffix, ...Array.from(run.tokens.subarray(s, e))]);
      const sinks = Math.min(this.sinks, s);
      const chunkLen = e - s;
      const observer = (view: LayerView): void => {
        const rows = view.positions.length;
        const before = view.positions[0] - L; // reconstruction rows fed before this block
        const width = sinks + chunkLen + before + rows;
        if (qBlock.length < rows * G * d) qBlock = new Float32Array(rows * G * d);
        if (kBlock.length < width * d) kBlock = new Float32Array(width * d);
        if (sBlock.length < rows * G * width) sBlock = new Float32Array(rows * G * width);
        if (maxBlock.length < G * width) maxBlock = new Float32Array(G * width);
        const vis = Int32Array.from({ length: rows }, (_, r) => sinks + chunkLen + before + r + 1);
        for (let kv = 0; kv < Hkv; kv++) {
          const head = cache.head(view.layer, kv);
          kBlock.set(head.keyRows(0, sinks), 0);
          kBlock.set(head.keyRows(s, e - s), sinks * d);
          kBlock.set(head.keyRows(L, before + rows), (sinks + chunkLen) * d);
          for (let r = 0; r < rows; r++) qBlock.set(view.queries.subarray((r * H + kv * G) * d, (r * H + (kv + 1) * G) * d), r * G * d);
          k.sgemm(false, true, rows * G, width, d, 1 / Math.sqrt(d), qBlock, d, kBlock, d, 0, sBlock, width);
          maxBlock.fill(0, 0, G * width);
          k.softmaxRowsMax(sBlock, rows, G, width, vis, maxBlock);
          const out = scores[view.layer][kv];
          for (let g = 0; g < G; g++) {
            for (let j = 0; j < chunkLen; j++) {
              const p = maxBlock[g * width + sinks + j];
              if (p > out[s + j]) out[s + j] = p;
            }
          }
        }
      };
      const positions = Int32Array.from({ length: ids.length }, (_, i) => L + i);
      run.model.forward({ tokens: ids, positions, cache, observer, logits: 'none' });
      cache.truncateFrom(L);
    }
    for (const layer of scores) for (const head of layer) for (let j = 0; j < Math.min(this.sinks, L); j++) head[j] = Math.max(head[j], 1);
    return scores;
  }
}
