/**
 * OpenAI's wire format: request bodies checked field by field (a bad one is a 400 naming it, as OpenAI's
 * `param`), and the response, chunk and error objects of /v1/chat/completions and /v1/completions.
 */
import { KvevictError } from '../errors.js';
import { PIPELINE_MODES, type PipelineMode } from '../generate/pipeline.js';
import { parsePress, pressFromSpec, withModelFiles } from '../press/registry.js';
import type { Compression, JobResult } from './engine.js';

/** An error answered as OpenAI's error object with an HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status === 401
      ? 'authentication_error'
      : status === 429
        ? 'rate_limit_error'
        : status >= 500
          ? 'server_error'
          : 'invalid_request_error',
  ) {
    super(message);
  }

  body(): object {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const bad = (param: string, message: string) => new HttpError(400, `${param}: ${message}`, param);

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'developer';
  content: string;
}

export interface Sampling {
  maxTokens: number | undefined;
  temperature: number;
  topP: number;
  seed: number | undefined;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

/** kv_compression as asked (defaults not yet applied). */
export interface CompressionRequest {
  press?: string;
  budget?: number;
  ratio?: number;
  mode?: PipelineMode;
  options: Record<string, string | number | boolean>;
}

export interface ParsedRequest extends Sampling {
  kv: CompressionRequest;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The JSON body as an object, or a 400. */
export function parseBody(raw: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw new HttpError(400, `the body is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(v)) throw new HttpError(400, 'the body must be a JSON object');
  return v;
}

function optNumber(b: Record<string, unknown>, k: string, lo: number, hi: number, integer = false): number | undefined {
  const v = b[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < lo || v > hi)
    throw bad(k, `must be ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
  return v;
}

function optBool(b: Record<string, unknown>, k: string): boolean {
  const v = b[k];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw bad(k, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function parseSampling(b: Record<string, unknown>): Sampling {
  if (b.model !== undefined && typeof b.model !== 'string') throw bad('model', 'must be a string');
  optNumber(b, 'n', 1, 1, true); // one choice per request
  const maxTokens = optNumber(b, 'max_completion_tokens', 0, 1e9, true) ?? optNumber(b, 'max_tokens', 0, 1e9, true);
  let stop: string[] = [];
  if (typeof b.stop === 'string') stop = [b.stop];
  else if (Array.isArray(b.stop)) {
    if (b.stop.length > 4 || !b.stop.every((s) => typeof s === 'string' && s.length > 0))
      throw bad('stop', 'must be a string or a list of at most 4 non-empty strings');
    stop = b.stop as string[];
  } else if (b.stop !== undefined && b.stop !== null) throw bad('stop', 'must be a string or a list of strings');
  if (stop.includes('')) throw bad('stop', 'an empty stop string');
  const so = b.stream_options;
  if (so !== undefined && so !== null && !isObject(so)) throw bad('stream_options', 'must be an object');
  const includeUsage = isObject(so) ? optBool(so, 'include_usage') : false;
  return {
    maxTokens,
    temperature: optNumber(b, 'temperature', 0, 2) ?? 1,
    topP: optNumber(b, 'top_p', Number.MIN_VALUE, 1) ?? 1,
    seed: optNumber(b, 'seed', -(2 ** 31), 2 ** 31 - 1, true),
    stop,
    stream: optBool(b, 'stream'),
    includeUsage,
  };
}

function parseCompression(b: Record<string, unknown>): CompressionRequest {
  const v = b.kv_compression;
  if (v === undefined || v === null) return { options: {} };
  if (!isObject(v)) throw bad('kv_compression', 'must be an object {"press", "budget" | "ratio", "mode", "options"}');
  for (const k of Object.keys(v))
    if (!['press', 'budget', 'ratio', 'mode', 'options'].includes(k)) throw bad(`kv_compression.${k}`, 'is not a field of kv_compression');
  if (v.press !== undefined && typeof v.press !== 'string') throw bad('kv_compression.press', 'must be a string');
  const budget = optNumber(v, 'budget', 1, 1e9, true);
  const ratio = v.ratio === undefined ? undefined : optNumber(v, 'ratio', 0, 0.999999);
  if (budget !== undefined && ratio !== undefined) throw bad('kv_compression', 'give budget or ratio, not both');
  if (v.mode !== undefined && !(PIPELINE_MODES as readonly unknown[]).includes(v.mode))
    throw bad('kv_compression.mode', `must be ${PIPELINE_MODES.join(' or ')}, got ${JSON.stringify(v.mode)}`);
  const options: Record<string, string | number | boolean> = {};
  if (v.options !== undefined) {
    if (!isObject(v.options)) throw bad('kv_compression.options', 'must be an object of the method options');
    for (const [k, x] of Object.entries(v.options)) {
      if (!['string', 'number', 'boolean'].includes(typeof x))
        throw bad(`kv_compression.options.${k}`, 'must be a string, number or boolean');
      options[k] = x as string | number | boolean;
    }
  }
  return { press: v.press as string | undefined, budget, ratio, mode: v.mode as PipelineMode | undefined, options };
}

/**
 * The eviction of a request: its kv_compression over the server's defaults; null for the full cache. Trained
 * files left at their defaults come from `modelPath`'s folder where it has its own.
 */
export function resolveCompression(
  kv: CompressionRequest,
  defaults: CompressionRequest,
  modelPath?: string,
): { compression: Compression | null; mode: PipelineMode } {
  const mode = kv.mode ?? defaults.mode ?? 'query-agnostic';
  const name = kv.press ?? defaults.press;
  if (name === undefined || name.toLowerCase() === 'full') return { compression: null, mode };
  const same = kv.press === undefined || kv.press === defaults.press;
  const options = kv.press === undefined ? { ...defaults.options, ...kv.options } : kv.options;
  const budget = kv.budget ?? (kv.ratio === undefined && same ? defaults.budget : undefined);
  const ratio = kv.ratio ?? (kv.budget === undefined && same ? defaults.ratio : undefined);
  for (const [k, x] of Object.entries(options))
    if (String(x).includes(':')) throw bad(`kv_compression.options.${k}`, 'must not contain ":"');
  const text = [name, ...Object.entries(options).map(([k, x]) => `${k}=${String(x)}`)].join(':');
  try {
    const spec = withModelFiles(parsePress(text, 'kv_compression'), modelPath);
    if (budget === undefined && ratio === undefined) throw bad('kv_compression', `press ${spec.name} needs a budget or a ratio`);
    const press = pressFromSpec(spec, { budget, ratio });
    return { compression: { press, name: spec.name, options: spec.options, budget, ratio }, mode };
  } catch (e) {
    if (e instanceof KvevictError) throw new HttpError(400, e.message, 'kv_compression');
    throw e;
  }
}

function contentText(v: unknown, i: number): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    return v
      .map((part, j) => {
        if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string')
          throw bad(`messages[${i}].content[${j}]`, 'only {"type": "text", "text": ...} parts are supported');
        return part.text;
      })
      .join('');
  }
  throw bad(`messages[${i}].content`, 'must be a string or a list of text parts');
}

export function parseChatRequest(b: Record<string, unknown>): ParsedRequest & { messages: ChatMessage[] } {
  if (!Array.isArray(b.messages) || b.messages.length === 0) throw bad('messages', 'must be a non-empty list of {role, content}');
  const messages = b.messages.map((m, i): ChatMessage => {
    if (!isObject(m)) throw bad(`messages[${i}]`, 'must be an object {role, content}');
    if (!['system', 'user', 'assistant', 'developer'].includes(m.role as string))
      throw bad(`messages[${i}].role`, `must be system, developer, user or assistant, got ${JSON.stringify(m.role)}`);
    return { role: m.role as ChatMessage['role'], content: contentText(m.content, i) };
  });
  return { ...parseSampling(b), kv: parseCompression(b), messages };
}

export function parseCompletionRequest(b: Record<string, unknown>): ParsedRequest & { prompt: string } {
  let prompt = b.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') prompt = prompt[0];
  if (typeof prompt !== 'string') throw bad('prompt', 'must be a string');
  if (prompt === '') throw bad('prompt', 'is empty');
  if (b.echo === true) throw bad('echo', 'is not supported');
  return { ...parseSampling(b), kv: parseCompression(b), prompt };
}

export type Kind = 'chat' | 'completion';

export function usageOf(r: JobResult) {
  return {
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens,
    kv_cache: { full_bytes: r.fullCacheBytes, kept_bytes: r.keptCacheBytes, context_reused: r.contextReused },
  };
}

export function responseObject(kind: Kind, id: string, created: number, model: string, r: JobResult): object {
  const finish_reason = r.finish;
  return kind === 'chat'
    ? {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: r.text }, logprobs: null, finish_reason }],
        usage: usageOf(r),
      }
    : {
        id,
        object: 'text_completion',
        created,
        model,
        choices: [{ index: 0, text: r.text, logprobs: null, finish_reason }],
        usage: usageOf(r),
      };
}

/** One streamed chunk: text (or the opening role), the finish reason at the end, or the usage after it. */
export function chunkObject(
  kind: Kind,
  id: string,
  created: number,
  model: string,
  part: { text?: string; role?: boolean; finish?: 'stop' | 'length'; usage?: object },
): object {
  const base = { id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created, model };
  if (part.usage) return { ...base, choices: [], usage: part.usage };
  const finish_reason = part.finish ?? null;
  if (kind === 'completion') return { ...base, choices: [{ index: 0, text: part.text ?? '', logprobs: null, finish_reason }] };
  const delta = part.role ? { role: 'assistant', content: '' } : part.text !== undefined ? { content: part.text } : {};
  return { ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason }] };
}
