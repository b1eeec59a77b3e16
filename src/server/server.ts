/**
 * `kvevict serve`: an OpenAI-compatible HTTP server with KV-cache eviction chosen per request. A thin layer
 * over the Engine (engine.ts): routes, authentication, prompts through the chat template, server-sent
 * events, one log line per request, Prometheus metrics. `Server.handle` is a plain Node request listener, so
 * the server can also be mounted inside another Node application.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { DEFAULT_KV_DTYPE, type KvDtype } from '../cache/kv-cache.js';
import { KvevictError } from '../errors.js';
import { promptText, withBos } from '../eval/prompt.js';
import type { PipelineMode } from '../generate/pipeline.js';
import { makeSampler } from '../generate/sampling.js';
import type { LlamaModel } from '../model/llama.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { Engine, QueueFullError, type JobResult, type JobSpec } from './engine.js';
import { MemoryLru, sharedStoreFrom, type SharedStore } from './stores.js';
import {
  HttpError,
  chunkObject,
  parseBody,
  parseChatRequest,
  parseCompletionRequest,
  resolveCompression,
  responseObject,
  usageOf,
  type ChatMessage,
  type CompressionRequest,
  type Kind,
  type ParsedRequest,
} from './wire.js';

export interface ServerOptions {
  model: LlamaModel;
  tokenizer: Tokenizer;
  /** the id GET /v1/models lists and responses carry */
  modelId: string;
  /** the model's folder or file, where methods look for their trained files (Judge Q's soft tokens) */
  modelPath?: string;
  host?: string;
  port?: number;
  /** the eviction of requests without kv_compression (and its defaults for fields they leave out) */
  defaults?: CompressionRequest;
  kvDtype?: KvDtype;
  /** bytes of compressed contexts kept in memory */
  cacheBytes?: number;
  /** a folder or redis://HOST:PORT shared by server processes; or a store built by the caller */
  store?: string | SharedStore;
  maxQueue?: number;
  /** sequences decoded together (1: one at a time) */
  maxBatch?: number;
  apiKey?: string;
  maxPromptTokens?: number;
  /** max_tokens when a request gives none */
  defaultMaxTokens?: number;
  /** one line per request (default: none) */
  log?: (line: string) => void;
}

/** Bodies larger than this are refused (413): about 8M characters of prompt. */
const MAX_BODY_BYTES = 32 << 20;

interface Counters {
  requests: Map<string, number>;
  promptTokens: number;
  generatedTokens: number;
  fullBytes: number;
  keptBytes: number;
}

export class Server {
  readonly engine: Engine;
  private http: HttpServer | null = null;
  /** set by close(): new completions get 503 */
  private closing = false;
  private readonly shared: SharedStore | null;
  private readonly memory: MemoryLru;
  private readonly counters: Counters = { requests: new Map(), promptTokens: 0, generatedTokens: 0, fullBytes: 0, keptBytes: 0 };
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly maxPromptTokens: number;
  private readonly defaults: CompressionRequest;
  private readonly modelPath: string | undefined;

  constructor(readonly opts: ServerOptions) {
    const cfg = opts.model.config;
    this.maxPromptTokens = Math.min(opts.maxPromptTokens ?? Infinity, cfg.maxPositions - 1);
    this.memory = new MemoryLru(opts.cacheBytes ?? 1 << 30);
    this.shared = typeof opts.store === 'string' ? sharedStoreFrom(opts.store) : (opts.store ?? null);
    this.defaults = opts.defaults ?? { options: {} };
    // the defaults are checked once, at start-up, as the CLI checks its flags
    if (this.defaults.press !== undefined) resolveCompressionOrThrow(this.defaults, opts.modelPath);
    this.modelPath = opts.modelPath;
    this.engine = new Engine(opts.model, opts.tokenizer, {
      kvDtype: opts.kvDtype ?? DEFAULT_KV_DTYPE,
      memory: this.memory,
      shared: this.shared,
      maxQueue: opts.maxQueue ?? 64,
      maxBatch: opts.maxBatch,
      warn: (m) => opts.log?.(`warning: ${m}`),
    });
    this.handle = this.handle.bind(this);
  }

  /** Listen on host:port (port 0: any free port); resolves with the address bound. */
  listen(): Promise<{ host: string; port: number; url: string }> {
    const host = this.opts.host ?? '127.0.0.1';
    return new Promise((resolve, reject) => {
      const s = createServer(this.handle);
      s.once('error', (e) => reject(new KvevictError(`serve: cannot listen on ${host}:${this.opts.port ?? 8080} (${e.message})`)));
      s.listen(this.opts.port ?? 8080, host, () => {
        const a = s.address() as AddressInfo;
        this.http = s;
        resolve({ host: a.address, port: a.port, url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` });
      });
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    const s = this.http;
    this.http = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    this.shared?.close();
  }

  private count(route: string, status: number): void {
    const k = `${route} ${status}`;
    this.counters.requests.set(k, (this.counters.requests.get(k) ?? 0) + 1);
  }

  /** The Node request listener: every route of the server. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const route = url.pathname.replace(/\/+$/, '') || '/';
    const t0 = performance.now();
    const fail = (e: unknown) => this.fail(req, res, route, t0, e);
    try {
      if (route === '/health' && req.method === 'GET') {
        this.count(route, 200);
        return sendJson(res, 200, {
          status: 'ok',
          model: this.opts.modelId,
          queue: this.engine.queueDepth,
          active: this.engine.activeSequences,
        });
      }
      if (route === '/metrics' && req.method === 'GET') {
        this.count(route, 200);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(this.metrics());
        return;
      }
      if (!route.startsWith('/v1/')) throw new HttpError(404, `no route ${req.method} ${route}`, null, 'not_found');
      if (this.opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.opts.apiKey}`)
        throw new HttpError(401, 'incorrect API key (Authorization: Bearer KEY)', null, 'invalid_api_key');
      if (route === '/v1/models' && req.method === 'GET') {
        this.count(route, 200);
        return sendJson(res, 200, {
          object: 'list',
          data: [{ id: this.opts.modelId, object: 'model', created: this.created, owned_by: 'kvevict' }],
        });
      }
      const kind: Kind | null = route === '/v1/chat/completions' ? 'chat' : route === '/v1/completions' ? 'completion' : null;
      if (!kind) throw new HttpError(404, `no route ${req.method} ${route}`, null, 'not_found');
      if (req.method !== 'POST') throw new HttpError(405, `${route} takes POST`);
      if (this.closing) throw new HttpError(503, 'the server is shutting down', null, 'unavailable');
      readBody(req)
        .then((raw) => this.complete(kind, route, parseBody(raw), req, res, t0))
        .catch(fail);
    } catch (e) {
      fail(e);
    }
  }

  /** The prompt of a request, split into the part compressed once and the part fed after it. */
  private prompt(kind: Kind, p: ParsedRequest & { messages?: ChatMessage[]; prompt?: string }, mode: PipelineMode) {
    const tok = this.opts.tokenizer;
    if (kind === 'completion') {
      const ids = tok.encode(p.prompt!, { addSpecialTokens: true });
      return { context: ids, question: [] as number[], chat: false, mode };
    }
    if (!tok.chatTemplate) throw new HttpError(400, `${this.opts.modelId} has no chat template: use /v1/completions`, 'messages');
    const messages = p.messages!;
    const full = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    let last = messages.length - 1;
    while (last >= 0 && messages[last].role !== 'user') last--;
    if (mode === 'query-agnostic' && last > 0) {
      // everything before the last user message is the context (when the template renders it as a prefix)
      const before = tok.applyChatTemplate(messages.slice(0, last), { addGenerationPrompt: false });
      if (full.startsWith(before) && before.length > 0)
        return { context: withBos(tok, tok.encode(before)), question: tok.encode(full.slice(before.length)), chat: false, mode };
    }
    // nothing before the last user message to reuse: the whole prompt is compressed (query-aware)
    return { context: withBos(tok, tok.encode(full)), question: [] as number[], chat: true, mode: 'query-aware' as PipelineMode };
  }

  private complete(kind: Kind, route: string, body: Record<string, unknown>, req: IncomingMessage, res: ServerResponse, t0: number): void {
    const p = kind === 'chat' ? parseChatRequest(body) : parseCompletionRequest(body);
    const { compression, mode: asked } = resolveCompression(p.kv, this.defaults, this.modelPath);
    const { context, question, chat, mode } = this.prompt(kind, p, asked);
    const promptTokens = context.length + question.length;
    if (promptTokens > this.maxPromptTokens)
      throw new HttpError(
        413,
        `the prompt has ${promptTokens} tokens; this server takes at most ${this.maxPromptTokens}`,
        kind === 'chat' ? 'messages' : 'prompt',
        'context_length_exceeded',
      );
    const room = this.opts.model.config.maxPositions - promptTokens;
    const maxNewTokens = Math.min(p.maxTokens ?? this.opts.defaultMaxTokens ?? 256, room);
    const spec: JobSpec = {
      contextTokens: context,
      questionTokens: question,
      mode,
      compression,
      chat,
      maxNewTokens,
      sampler: makeSampler({ temperature: p.temperature, topP: p.topP, seed: p.seed ?? randomBytes(4).readInt32LE(0) }),
      stopStrings: p.stop,
      text: promptText(this.opts.tokenizer, kind === 'chat'),
    };
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const model = this.opts.modelId;
    const logDone = (r: JobResult) => {
      this.count(route, 200);
      this.counters.promptTokens += r.promptTokens;
      this.counters.generatedTokens += r.completionTokens;
      this.counters.fullBytes += r.fullCacheBytes;
      this.counters.keptBytes += r.keptCacheBytes;
      const method = compression ? `${compression.name}@${compression.budget ?? `ratio ${compression.ratio}`}` : 'full';
      this.opts.log?.(
        `${req.method} ${route} 200 ${method} ${mode} prompt ${r.promptTokens} generated ${r.completionTokens} cache ${mib(r.keptCacheBytes)}/${mib(r.fullCacheBytes)} MiB` +
          `${r.contextReused ? ' context reused' : ''} prefill ${r.prefillMs.toFixed(0)} ms decode ${r.decodeMs.toFixed(0)} ms total ${(performance.now() - t0).toFixed(0)} ms`,
      );
    };
    let cancel: (() => void) | null = null;
    let done = false;
    res.on('close', () => {
      if (!done) {
        cancel?.();
        this.count(route, 499);
        this.opts.log?.(`${req.method} ${route} 499 client closed the connection (request cancelled)`);
      }
    });
    const failLate = (e: Error) => {
      done = true;
      this.fail(req, res, route, t0, e);
    };
    if (!p.stream) {
      cancel = this.engine.submit(spec, {
        onFinish: (r) => {
          done = true;
          logDone(r);
          sendJson(res, 200, responseObject(kind, id, created, model, r));
        },
        onError: failLate,
      });
      return;
    }
    const send = (o: object) => res.write(`data: ${JSON.stringify(o)}\n\n`);
    // the event stream starts with the first text (or the end), a chat's with the assistant role
    const open = () => {
      if (!res.headersSent) startStream(res, () => kind === 'chat' && send(chunkObject(kind, id, created, model, { role: true })));
    };
    cancel = this.engine.submit(spec, {
      onDelta: (text) => {
        open();
        send(chunkObject(kind, id, created, model, { text }));
      },
      onFinish: (r) => {
        done = true;
        logDone(r);
        open();
        send(chunkObject(kind, id, created, model, { finish: r.finish }));
        if (p.includeUsage) send(chunkObject(kind, id, created, model, { usage: usageOf(r) }));
        res.end('data: [DONE]\n\n');
      },
      onError: failLate,
    });
  }

  /** Answer an error as OpenAI's error object (inside the event stream once it has started), logged and counted. */
  private fail(req: IncomingMessage, res: ServerResponse, route: string, t0: number, e: unknown): void {
    const err =
      e instanceof HttpError
        ? e
        : e instanceof QueueFullError
          ? new HttpError(429, e.message, null, 'queue_full')
          : e instanceof KvevictError
            ? new HttpError(400, e.message)
            : new HttpError(500, `internal error: ${(e as Error).message}`);
    this.count(route, err.status);
    this.opts.log?.(`${req.method} ${route} ${err.status} ${err.message} ${(performance.now() - t0).toFixed(0)} ms`);
    if (!res.headersSent) return sendJson(res, err.status, err.body());
    if (!res.writableEnded) {
      res.write(`data: ${JSON.stringify(err.body())}\n\n`);
      res.end();
    }
  }

  /** Prometheus text format. */
  metrics(): string {
    const c = this.counters,
      s = this.engine.stats;
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`);
    };
    metric(
      'kvevict_requests_total',
      'counter',
      'HTTP requests by route and status',
      [...c.requests].map(([k, v]) => {
        const [route, status] = k.split(' ');
        return [`{route="${route}",status="${status}"}`, v];
      }),
    );
    metric('kvevict_prompt_tokens_total', 'counter', 'prompt tokens of completed requests', [['', c.promptTokens]]);
    metric('kvevict_generated_tokens_total', 'counter', 'tokens generated', [['', c.generatedTokens]]);
    metric('kvevict_cache_full_bytes_total', 'counter', 'KV-cache bytes the completed prompts would hold without eviction', [
      ['', c.fullBytes],
    ]);
    metric('kvevict_cache_kept_bytes_total', 'counter', 'KV-cache bytes kept after eviction', [['', c.keptBytes]]);
    metric('kvevict_context_store_hits_total', 'counter', 'compressed contexts reused, by tier', [
      ['{tier="memory"}', s.storeHits.memory],
      [`{tier="${this.shared?.kind ?? 'shared'}"}`, s.storeHits.shared],
    ]);
    metric('kvevict_context_store_misses_total', 'counter', 'compressed contexts not found (compressed and stored)', [['', s.storeMisses]]);
    metric('kvevict_context_store_memory_bytes', 'gauge', 'bytes of compressed contexts held in memory', [['', this.memory.bytes]]);
    metric('kvevict_queue_depth', 'gauge', 'requests waiting for their prefill', [['', this.engine.queueDepth]]);
    metric('kvevict_active_sequences', 'gauge', 'requests generating', [['', this.engine.activeSequences]]);
    metric('kvevict_decode_steps_total', 'counter', 'batched decode steps', [['', s.decodeSteps]]);
    metric('kvevict_decode_rows_total', 'counter', 'sequence rows over all decode steps (rows / steps: the mean batch)', [
      ['', s.decodeRows],
    ]);
    return lines.join('\n') + '\n';
  }
}

function resolveCompressionOrThrow(d: CompressionRequest, modelPath: string | undefined): void {
  try {
    resolveCompression({ options: {} }, d, modelPath);
  } catch (e) {
    if (e instanceof HttpError) throw new KvevictError(`serve: ${e.message.replace(/^kv_compression/, '--press')}`);
    throw e;
  }
}

function mib(b: number): string {
  return (b / 2 ** 20).toFixed(2);
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  if (res.writableEnded) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function startStream(res: ServerResponse, first: () => void): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  first();
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
      if (n > MAX_BODY_BYTES) {
        reject(new HttpError(413, `the body is larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      parts.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}
