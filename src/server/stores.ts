/**
 * Where the server keeps compressed contexts, under a content key: an in-memory LRU bounded in bytes, in front
 * of an optional shared tier, a folder of `.kvc` files or a Redis server (several server processes, on one
 * machine or several, then reuse each other's contexts). The shared tiers hold the `.kvc` format
 * (generate/context-file.ts) byte for byte, so what they return is checked as any file is (its sha256, the
 * model's fingerprint); a damaged entry is a miss, never an answer.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KvDtype } from '../cache/kv-cache.js';
import { KvevictError } from '../errors.js';
import { loadCompressedContext, saveCompressedContext, type ContextOrigin } from '../generate/context-file.js';
import type { CompressedContext } from '../generate/pipeline.js';
import { modelHash } from '../model/hash.js';
import type { LlamaModel } from '../model/llama.js';
import { RedisClient } from './redis.js';

export interface StoredContext {
  context: CompressedContext;
  origin: ContextOrigin;
}

/** A tier that holds contexts elsewhere than this process's memory. */
export interface SharedStore {
  readonly kind: 'disk' | 'redis';
  get(key: string, model: LlamaModel): Promise<StoredContext | null>;
  put(key: string, model: LlamaModel, stored: StoredContext): Promise<void>;
  close(): void;
}

/** The content key of a compressed context: the model, the cache's dtype, the context's ids, the press and its budget. */
export function contextKey(
  model: LlamaModel,
  kvDtype: KvDtype,
  tokens: ArrayLike<number>,
  press: string,
  options: Record<string, unknown>,
  budget: { budget?: number; ratio?: number },
  /** how the context's text is framed for a press that writes text (KVzip's repeat prompt inside a chat turn) */
  framing = '',
): string {
  const sortedOptions = Object.fromEntries(Object.entries(options).sort(([a], [b]) => (a < b ? -1 : 1)));
  const fields = [
    modelHash(model.config, model.weights),
    kvDtype,
    press,
    sortedOptions,
    budget.budget ?? null,
    budget.ratio ?? null,
    framing,
  ];
  return createHash('sha256')
    .update(JSON.stringify(fields))
    .update(new Uint8Array(Int32Array.from(tokens).buffer))
    .digest('hex');
}

/** Bytes an entry holds in memory: its cache and its last logits. */
function entryBytes(s: StoredContext): number {
  return s.context.cache.bytes + s.context.lastLogits.byteLength;
}

/** Least recently used contexts dropped first once their bytes pass `capacity`. */
export class MemoryLru {
  private readonly entries = new Map<string, StoredContext>();
  bytes = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): StoredContext | null {
    const e = this.entries.get(key);
    if (!e) return null;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e;
  }

  put(key: string, s: StoredContext): void {
    const n = entryBytes(s);
    if (n > this.capacity) return;
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= entryBytes(old);
      this.entries.delete(key);
    }
    this.entries.set(key, s);
    this.bytes += n;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.capacity) break;
      this.entries.delete(k);
      this.bytes -= entryBytes(e);
    }
  }
}

/** A folder of KEY.kvc files (atomic writes: a reader never sees half a file). */
export class DiskStore implements SharedStore {
  readonly kind = 'disk';
  constructor(readonly dir: string) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new KvevictError(`--store ${dir}: cannot create the folder (${(e as Error).message})`);
    }
  }

  get(key: string, model: LlamaModel): Promise<StoredContext | null> {
    const file = join(this.dir, `${key}.kvc`);
    if (!existsSync(file)) return Promise.resolve(null);
    try {
      return Promise.resolve(loadCompressedContext(file, model));
    } catch (e) {
      if (!(e instanceof KvevictError)) throw e;
      return Promise.resolve(null);
    }
  }

  put(key: string, model: LlamaModel, s: StoredContext): Promise<void> {
    saveCompressedContext(join(this.dir, `${key}.kvc`), model, s.context, s.origin);
    return Promise.resolve();
  }

  close(): void {}
}

/** Contexts in Redis under "kvevict:context:KEY", each the bytes of a .kvc file. */
export class RedisStore implements SharedStore {
  readonly kind = 'redis';
  private readonly scratch = mkdtempSync(join(tmpdir(), 'kvevict-redis-'));
  private seq = 0;

  constructor(
    readonly client: RedisClient,
    /** seconds an entry lives (0: until Redis evicts it) */
    readonly ttlSeconds = 0,
  ) {}

  private file(): string {
    return join(this.scratch, `${process.pid}-${this.seq++}.kvc`);
  }

  async get(key: string, model: LlamaModel): Promise<StoredContext | null> {
    const bytes = await this.client.get(`kvevict:context:${key}`);
    if (!bytes) return null;
    const f = this.file();
    try {
      writeFileSync(f, bytes);
      return loadCompressedContext(f, model);
    } catch (e) {
      if (!(e instanceof KvevictError)) throw e;
      return null;
    } finally {
      rmSync(f, { force: true });
    }
  }

  async put(key: string, model: LlamaModel, s: StoredContext): Promise<void> {
    const f = this.file();
    try {
      saveCompressedContext(f, model, s.context, s.origin);
      await this.client.set(`kvevict:context:${key}`, readFileSync(f), this.ttlSeconds || undefined);
    } finally {
      rmSync(f, { force: true });
    }
  }

  close(): void {
    this.client.close();
    rmSync(this.scratch, { recursive: true, force: true });
  }
}

/** --store DIR | redis://HOST:PORT as a shared tier (none when absent). */
export function sharedStoreFrom(spec: string | undefined): SharedStore | null {
  if (spec === undefined || spec === '') return null;
  if (spec.startsWith('redis://')) return new RedisStore(RedisClient.fromUrl(spec));
  if (/^[a-z]+:\/\//i.test(spec)) throw new KvevictError(`--store: "${spec}" is neither a folder nor a redis:// URL`);
  return new DiskStore(spec);
}
