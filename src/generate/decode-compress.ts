/**
 * Compression during decoding (kvpress's DecodingPress): every `interval` generated tokens, every head is cut
 * back to the press's budget by its scorer, which sees everything so far as its prompt and the latest
 * generated tokens' queries as its window. The cache never holds more than budget + interval entries per head
 * once the first cut is made.
 */
import type { KvCache } from '../cache/kv-cache.js';
import { KvevictError } from '../errors.js';
import { kernels } from '../kernels/index.js';
import type { LlamaModel } from '../model/llama.js';
import type { Observer } from '../model/types.js';
import { PrefillRecorder } from '../press/capture.js';
import type { Captured, Press, PrefillRun, PromptText } from '../press/types.js';
import { decode, type DecodeOptions, type DecodeResult } from './decode.js';
import { carryWindow, checkChunkable } from './chunking.js';

export interface DecodeCompression {
  /** the method, with the budget every head is cut back to */
  press: Press;
  /** generated tokens between cuts */
  interval: number;
}

export interface CompressingDecodeResult extends DecodeResult {
  /** how many times the cache was cut */
  cuts: number;
}

/** decode(), cutting the cache every `dc.interval` tokens; `tokensSoFar` are the ids at positions 0 .. nextPosition - 1. */
export async function decodeCompressing(
  model: LlamaModel,
  cache: KvCache,
  o: DecodeOptions,
  dc: DecodeCompression,
  tokensSoFar: ArrayLike<number>,
  text?: PromptText,
): Promise<CompressingDecodeResult> {
  try {
    checkChunkable(dc.press, dc.interval);
  } catch (e) {
    if (e instanceof KvevictError) throw new KvevictError(e.message.replace(/--chunk-compress/g, '--decode-compress'));
    throw e;
  }
  const cfg = model.config;
  const ids = Array.from(tokensSoFar);
  const request = dc.press.capture(Number.MAX_SAFE_INTEGER);
  const out: CompressingDecodeResult = { tokens: [], steps: [], finish: 'length', cuts: 0 };
  let logits = o.firstLogits;
  let position = o.nextPosition;
  let previous: Captured | null = null;
  while (out.tokens.length < o.maxNewTokens) {
    const n = Math.min(dc.interval, o.maxNewTokens - out.tokens.length);
    const more = out.tokens.length + n < o.maxNewTokens;
    const end = position + n;
    const recorder = new PrefillRecorder(kernels(), cfg, cache, 0, end, request, previous);
    const observer: Observer | undefined = o.observer
      ? (v) => {
          recorder.observer(v);
          o.observer!(v);
        }
      : recorder.observer;
    const seg = decode(model, cache, { ...o, firstLogits: logits, nextPosition: position, maxNewTokens: n, observer, feedLast: more });
    out.tokens.push(...seg.tokens);
    out.steps.push(...seg.steps);
    if (seg.logits) (out.logits ??= []).push(...seg.logits);
    ids.push(...seg.tokens);
    if (seg.finish === 'stop' || !seg.nextLogits) {
      out.finish = seg.finish;
      return out;
    }
    logits = seg.nextLogits;
    position = end;
    const run: PrefillRun = {
      model,
      cache,
      tokens: Int32Array.from(ids.slice(0, end)),
      promptLength: end,
      startPosition: 0,
      lastLogits: logits,
      captured: recorder.result(),
      eosTokenIds: o.stopTokens ?? cfg.eosTokenIds,
      text,
    };
    carryWindow(run.captured, previous, end - n, cfg.numHeads * cfg.headDim);
    previous = run.captured;
    cache.retainAll(await dc.press.compress(run));
    out.cuts++;
  }
  return out;
}
