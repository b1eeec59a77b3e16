import { KvevictError } from '../errors.js';
import type { PromptText } from '../press/types.js';
import type { EvalCase } from './case.js';

/** What evaluation needs from a tokenizer (the model's Tokenizer satisfies it). */
export interface TextTokenizer {
  encode(text: string): ArrayLike<number>;
  decode(ids: ArrayLike<number>): string;
  readonly chatTemplate?: string | null;
  applyChatTemplate?(messages: { role: string; content: string }[], opts: { addGenerationPrompt?: boolean }): string;
  /** the bytes a token stands for (byte-level tokenizers), so text can be cut between tokens */
  tokenBytes?(id: number): Uint8Array;
  /** a prompt starts with bosTokenId (as Hugging Face's tokenizer(text) and llama.cpp add it) */
  readonly addBosToken?: boolean;
  readonly bosTokenId?: number | null;
}

/** ids with the tokenizer's BOS in front when it asks for one, never a second one (a chat template may write it). */
export function withBos<T extends ArrayLike<number>>(tok: TextTokenizer, ids: T): T extends Int32Array ? Int32Array : number[] {
  const bos = tok.addBosToken ? (tok.bosTokenId ?? null) : null;
  const list = Array.from(ids);
  if (bos !== null && list[0] !== bos) list.unshift(bos);
  return (ids instanceof Int32Array ? Int32Array.from(list) : list) as T extends Int32Array ? Int32Array : number[];
}

/**
 * The text of each token, for display: bytes are decoded as a stream, so a character split over several
 * byte tokens shows on the token that completes it (not as replacement characters).
 */
export function tokenTexts(tok: TextTokenizer, ids: readonly number[]): string[] {
  if (!tok.tokenBytes) return ids.map((id) => tok.decode([id]));
  const dec = new TextDecoder('utf-8', { fatal: false });
  const out = ids.map((id) => dec.decode(tok.tokenBytes!(id), { stream: true }));
  const rest = dec.decode();
  if (rest && out.length) out[out.length - 1] += rest;
  return out;
}

/** A case turned into tokens: the compressible part and the part fed after it. */
export interface PreparedPrompt {
  /** chat header + instructions + context */
  contextTokens: Int32Array;
  /** the rest of the user turn (question), the chat template's end and the answer prefix */
  questionTokens: Int32Array;
  /** tokens cut from the middle to fit the model (0 when none) */
  truncatedTokens: number;
}

const SPLIT = '\u0001KVEVICT-CONTEXT-END\u0001';

function toInt32(ids: ArrayLike<number>): Int32Array {
  return Int32Array.from(ids);
}

function concat(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The chat template around one user turn, split where the user text goes. */
export function chatWrapper(tok: TextTokenizer): { header: string; footer: string } | null {
  if (!tok.applyChatTemplate || !tok.chatTemplate) return null;
  const rendered = tok.applyChatTemplate([{ role: 'user', content: SPLIT }], { addGenerationPrompt: true });
  const at = rendered.indexOf(SPLIT);
  if (at < 0) throw new KvevictError('chat template drops the user message: cannot place the context');
  return { header: rendered.slice(0, at), footer: rendered.slice(at + SPLIT.length) };
}

/**
 * LongBench's middle truncation of a prompt that is too long: keep the first and the last `half` tokens
 * (half = floor(max / 2)). The cut falls inside `head` (the instructions and context) whenever `tail`
 * (the question) is at most half; a longer question is kept whole and the context is cut from its end.
 */
export function truncateMiddle(head: Int32Array, tail: Int32Array, max: number, where: string): { head: Int32Array; removed: number } {
  const n = head.length + tail.length;
  if (n <= max) return { head, removed: 0 };
  if (tail.length >= max)
    throw new KvevictError(
      `${where}: the question alone (${tail.length} tokens) does not fit the model context (${max} tokens for the prompt)`,
    );
  const half = Math.floor(max / 2);
  if (tail.length <= half) {
    const keepEnd = half - tail.length;
    const out = concat(head.subarray(0, half), head.subarray(head.length - keepEnd));
    return { head: out, removed: head.length - out.length };
  }
  const out = head.subarray(0, max - tail.length);
  return { head: out, removed: head.length - out.length };
}

/** What becomes a prompt: the compressible head, the part fed after it, whether it goes through the chat template. */
export interface PromptParts {
  /** instructions and context: the compressible part */
  head: string;
  /** the question (and what follows it), fed after the compressed head in query-agnostic mode */
  tail: string;
  chat: boolean;
  /** text the answer starts with, after the chat template's generation prompt */
  answerPrefix?: string;
  /** positions kept free for the answer */
  reserve: number;
  /** names the prompt in errors */
  id: string;
}

/**
 * Tokens of a prompt for a model with `maxContext` positions: the user turn is truncated in the middle (as
 * LongBench does, before the chat template) so that prompt + answer fit, then wrapped in the chat template
 * when `chat` and the tokenizer has one.
 */
export function assemblePrompt(tok: TextTokenizer, parts: PromptParts, maxContext: number): PreparedPrompt {
  const wrap = parts.chat ? chatWrapper(tok) : null;
  const answerPrefix = parts.answerPrefix ?? '';
  const prefix = wrap ? answerPrefix.replace(/^ +/, '') : answerPrefix;
  const header = wrap ? wrap.header : '';
  const footer = (wrap ? wrap.footer : '') + prefix;
  const overhead = tok.encode(header).length + tok.encode(footer).length + (tok.addBosToken ? 1 : 0);
  const maxUser = maxContext - parts.reserve - overhead;
  if (maxUser <= 0)
    throw new KvevictError(
      `${parts.id}: the model context (${maxContext}) leaves no room for the prompt after ${parts.reserve} answer tokens`,
    );
  let head = parts.head;
  let tail = parts.tail;
  const headIds = toInt32(tok.encode(head));
  const tailIds = toInt32(tok.encode(tail));
  const cut = truncateMiddle(headIds, tailIds, maxUser, parts.id);
  if (cut.removed > 0) head = tok.decode(cut.head);
  if (!wrap && cut.removed === 0)
    return { contextTokens: withBos(tok, headIds), questionTokens: concat(tailIds, toInt32(tok.encode(footer))), truncatedTokens: 0 };
  tail = tail + footer;
  return {
    contextTokens: withBos(tok, toInt32(tok.encode(header + head))),
    questionTokens: toInt32(tok.encode(tail)),
    truncatedTokens: cut.removed,
  };
}

/** Tokens of an evaluation case (see assemblePrompt). */
export function preparePrompt(c: EvalCase, tok: TextTokenizer, maxContext: number): PreparedPrompt {
  return assemblePrompt(
    tok,
    { head: c.before + c.context, tail: c.after, chat: c.chat, answerPrefix: c.answerPrefix, reserve: c.maxNewTokens, id: c.id },
    maxContext,
  );
}

/** The tokenizer as presses that write text see it (KVzip): in a chat, with the template's end of the user turn. */
export function promptText(tok: TextTokenizer, chat: boolean): PromptText {
  return { encode: (text) => tok.encode(text), turnEnd: chat ? chatWrapper(tok)?.footer : undefined };
}
