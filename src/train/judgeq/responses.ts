import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { KvevictError } from '../../errors.js';
import { decode } from '../../generate/decode.js';
import { prefill } from '../../generate/pipeline.js';
import type { KvCache } from '../../cache/kv-cache.js';
import type { LlamaModel } from '../../model/llama.js';
import { TRAINING_KV_DTYPE } from './objective.js';

/**
 * The target model's own greedy responses, generated once and kept in a JSONL file (one line per prompt,
 * appended as they are made, so an interrupted run resumes where it stopped). Entries are keyed by the model
 * hash, the response limit and the prompt's token ids: another model or limit never reuses them.
 */
export class ResponseCache {
  private readonly entries = new Map<string, Int32Array>();
  generated = 0;

  constructor(
    readonly file: string,
    readonly modelHash: string,
    readonly maxNewTokens: number,
    readonly stopTokens: readonly number[],
  ) {
    if (!existsSync(file)) return;
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      let e: { key?: unknown; response?: unknown };
      try {
        e = JSON.parse(line) as { key?: unknown; response?: unknown };
      } catch {
        // a line cut short by an interrupted write is dropped; it is regenerated on demand
        if (i === lines.length - 1 || lines.slice(i + 1).every((l) => !l.trim())) return;
        throw new KvevictError(`${file}: line ${i + 1} is not valid JSON (delete the file to regenerate the responses)`);
      }
      if (typeof e.key === 'string' && Array.isArray(e.response)) this.entries.set(e.key, Int32Array.from(e.response as number[]));
    });
  }

  get size(): number {
    return this.entries.size;
  }

  key(prompt: Int32Array): string {
    return createHash('sha256')
      .update(`${this.modelHash}:${this.maxNewTokens}:${prompt.join(',')}`)
      .digest('hex')
      .slice(0, 40);
  }

  has(prompt: Int32Array): boolean {
    return this.entries.has(this.key(prompt));
  }

  /** The cached response to `prompt`, or undefined. */
  lookup(prompt: Int32Array): Int32Array | undefined {
    return this.entries.get(this.key(prompt));
  }

  /**
   * The greedy response to `prompt` (without its stop token), generated with the full cache when not cached.
   * `prefilled` (the prompt's full cache and last logits) saves a prefill; the cache is left as it came. The
   * response may be empty when the model stops at once.
   */
  get(model: LlamaModel, prompt: Int32Array, prefilled?: { cache: KvCache; lastLogits: Float32Array }): Int32Array {
    const key = this.key(prompt);
    const known = this.entries.get(key);
    if (known) return known;
    const { cache, lastLogits } = prefilled ?? prefill(model, prompt, { kvDtype: TRAINING_KV_DTYPE });
    const room = Math.max(0, Math.min(this.maxNewTokens, model.config.maxPositions - prompt.length));
    let tokens: number[];
    try {
      const d = decode(model, cache, {
        firstLogits: lastLogits,
        nextPosition: prompt.length,
        maxNewTokens: room,
        stopTokens: this.stopTokens,
      });
      tokens = d.finish === 'stop' ? d.tokens.slice(0, -1) : d.tokens;
    } finally {
      cache.truncateFrom(prompt.length);
    }
    const response = Int32Array.from(tokens);
    this.entries.set(key, response);
    mkdirSync(dirname(this.file), { recursive: true });
    appendFileSync(this.file, JSON.stringify({ key, prompt_length: prompt.length, response: tokens }) + '\n');
    this.generated++;
    return response;
  }
}
