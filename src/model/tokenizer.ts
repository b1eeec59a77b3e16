import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { KvevictError } from '../errors.js';
import { readJson } from './config.js';
import { SpmBackend, type SpmVocab } from './spm.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface EncodeOptions {
  /**
   * add BOS (and EOS) where the tokenizer asks for them (addBosToken / addEosToken), never a second one when
   * the text already starts with BOS; default false: text is tokenized as is
   */
  addSpecialTokens?: boolean;
}

/** What a tokenizer's algorithm provides; the Tokenizer adds specials, chat templates and checks around it. */
interface TokenizerBackend {
  /** vocabulary size (largest id + 1) */
  readonly size: number;
  encode(text: string): number[];
  decode(ids: number[], skipSpecial: boolean): string;
  tokenToId(token: string): number | undefined;
  tokenString(id: number): string | undefined;
  specialIds(): number[];
  /** the bytes a token stands for, or null to use its decoded text */
  tokenBytes(id: number): Uint8Array | null;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** append the assistant turn's opening (e.g. "<|im_start|>assistant\n") */
  addGenerationPrompt?: boolean;
}

type Json = Record<string, unknown>;

/** A tokenizer_config.json token entry is a string or an AddedToken object {content, ...}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return null;
}

/** GPT-2's byte -> printable character table used by ByteLevel pre-tokenizers and decoders. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCodePoint(256 + n++);
  return table;
}

/** ChatML without a default system prompt: the template of byte-level tokenizers made here. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * A standard tokenizer.json for a byte-level tokenizer: a BPE model whose vocabulary is the 256 ByteLevel
 * characters (token id = byte value) followed by `specials` (ids 256, 257, ...), with no merges, a ByteLevel
 * pre-tokenizer (no regex split, no prefix space) and decoder. Any UTF-8 text encodes to one token per byte.
 */
export function makeByteTokenizerJson(specials: string[]): object {
  const chars = bytesToUnicode();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => {
    vocab[c] = b;
  });
  const addedTokens = specials.map((content, i) => ({
    id: 256 + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  for (const t of addedTokens) vocab[t.content] = t.id;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: bpeModelJson(vocab, []),
  };
}

/**
 * The tokenizer_config.json going with makeByteTokenizerJson: ChatML template, bos "<|im_start|>" and
 * eos/pad "<|im_end|>" when present among the specials, unk the first special.
 */
export function makeByteTokenizerConfig(specials: string[], chatTemplate: string = CHATML_TEMPLATE): object {
  const pick = (want: string) => (specials.includes(want) ? want : null);
  const decoder: Record<string, object> = {};
  specials.forEach((content, i) => {
    decoder[String(256 + i)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  });
  return {
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    bos_token: pick('<|im_start|>'),
    eos_token: pick('<|im_end|>') ?? specials[specials.length - 1] ?? null,
    pad_token: pick('<|im_end|>'),
    unk_token: specials[0] ?? null,
    additional_special_tokens: specials.filter((s) => s === '<|im_start|>' || s === '<|im_end|>'),
    chat_template: chatTemplate,
    clean_up_tokenization_spaces: false,
    model_max_length: 1000000,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
}

/**
 * A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) with its chat template.
 * Encoding adds no special tokens unless asked: prompts are tokenized exactly as given.
 */
export class Tokenizer {
  private readonly backend: TokenizerBackend;
  /** vocabulary size (largest id + 1, added tokens included) */
  readonly vocabSize: number;
  private readonly specialIds: Set<number>;
  /**
   * encode(text, { addSpecialTokens: true }) starts with BOS: tokenizer_config.json's add_bos_token, GGUF's
   * tokenizer.ggml.add_bos_token, else what the tokenizer.json post-processor does (llama.cpp's default for
   * SentencePiece vocabularies: true)
   */
  readonly addBosToken: boolean;
  readonly addEosToken: boolean;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** every id that ends generation: tokenizer_config's eos_token plus the model config's eos ids */
  readonly eosTokenIds: number[];
  /** the raw tokenizer_config.json's chat template, or null */
  readonly chatTemplate: string | null;
  /** the raw objects, for writers (GGUF) */
  readonly tokenizerJson: Json;
  /** a SentencePiece vocabulary as a GGUF "llama" tokenizer stores it (for the GGUF writer), or null */
  readonly spmVocab: SpmVocab | null;
  readonly tokenizerConfig: Json;
  private template: Template | null = null;
  private readonly source: string;
  /** where the chat template came from (tokenizer_config.json, chat_template.jinja, ...), for its error messages */
  private readonly templateSource: string;

  constructor(
    tokenizerJson: Json,
    tokenizerConfig: Json,
    opts: {
      eosTokenIds?: number[];
      chatTemplate?: string | null;
      source?: string;
      templateSource?: string;
      backend?: TokenizerBackend;
      spmVocab?: SpmVocab;
    } = {},
  ) {
    this.spmVocab = opts.spmVocab ?? null;
    this.source = opts.source ?? 'tokenizer.json';
    this.templateSource = opts.templateSource ?? this.source;
    this.tokenizerJson = tokenizerJson;
    this.tokenizerConfig = tokenizerConfig;
    if (opts.backend) {
      this.backend = opts.backend;
    } else {
      const model = tokenizerJson.model as Json | undefined;
      if (!model || typeof model !== 'object') throw new KvevictError(`${this.source}: missing "model"`);
      let hf: HfTokenizer;
      try {
        hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
      } catch (e) {
        throw new KvevictError(`${this.source}: unsupported tokenizer (${(e as Error).message})`);
      }
      this.backend = hfBackend(hf, isByteLevel(tokenizerJson.decoder as Json | null | undefined));
    }
    this.vocabSize = this.backend.size;
    this.specialIds = new Set(this.backend.specialIds());
    const idOf = (key: string): number | null => {
      const c = tokenContent(tokenizerConfig[key]);
      if (c === null) return null;
      return this.backend.tokenToId(c) ?? null;
    };
    this.bosTokenId = idOf('bos_token');
    this.eosTokenId = idOf('eos_token');
    this.padTokenId = idOf('pad_token');
    this.unkTokenId = idOf('unk_token');
    const eos = new Set<number>();
    if (this.eosTokenId !== null) eos.add(this.eosTokenId);
    for (const id of opts.eosTokenIds ?? []) eos.add(id);
    this.eosTokenIds = [...eos];
    this.chatTemplate = opts.chatTemplate !== undefined ? opts.chatTemplate : pickTemplate(tokenizerConfig.chat_template);
    const flag = (key: string, fallback: boolean) =>
      typeof tokenizerConfig[key] === 'boolean' ? (tokenizerConfig[key] as boolean) : fallback;
    this.addBosToken = flag(
      'add_bos_token',
      this.bosTokenId !== null && postProcessorAdds(tokenizerJson, tokenContent(tokenizerConfig.bos_token)),
    );
    this.addEosToken = flag('add_eos_token', false);
  }

  /** Load DIR/tokenizer.json and DIR/tokenizer_config.json (and chat_template.jinja / chat_template.json when present). */
  static fromDir(dir: string, opts: { eosTokenIds?: number[] } = {}): Tokenizer {
    const tj = join(dir, 'tokenizer.json');
    const tc = join(dir, 'tokenizer_config.json');
    const tokenizerJson = readJson(tj);
    if (typeof tokenizerJson !== 'object' || tokenizerJson === null || Array.isArray(tokenizerJson))
      throw new KvevictError(`${tj}: expected a JSON object`);
    const cfg = existsSync(tc) ? readJson(tc) : {};
    if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new KvevictError(`${tc}: expected a JSON object`);
    let chatTemplate = pickTemplate((cfg as Json).chat_template);
    let templateSource = tc;
    const jinja = join(dir, 'chat_template.jinja');
    const ctJson = join(dir, 'chat_template.json');
    if (chatTemplate === null && existsSync(jinja)) {
      chatTemplate = readFileSync(jinja, 'utf8');
      templateSource = jinja;
    }
    if (chatTemplate === null && existsSync(ctJson)) {
      chatTemplate = pickTemplate((readJson(ctJson) as Json).chat_template);
      templateSource = ctJson;
    }
    return new Tokenizer(tokenizerJson as Json, cfg as Json, { eosTokenIds: opts.eosTokenIds, chatTemplate, source: tj, templateSource });
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids = text.length === 0 ? [] : this.backend.encode(text);
    if (!opts.addSpecialTokens) return ids;
    if (this.addBosToken && this.bosTokenId !== null && ids[0] !== this.bosTokenId) ids.unshift(this.bosTokenId);
    if (this.addEosToken && this.eosTokenId !== null && ids[ids.length - 1] !== this.eosTokenId) ids.push(this.eosTokenId);
    return ids;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    const list = Array.from(ids);
    for (const id of list)
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new KvevictError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    return this.backend.decode(list, opts.skipSpecialTokens ?? false);
  }

  /** The raw vocabulary string of a token (e.g. "Ġthe" in byte-level BPE, "▁the" in SentencePiece). */
  tokenToString(id: number): string {
    const t = this.backend.tokenString(id);
    if (t === undefined) throw new KvevictError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    return t;
  }

  /** The id of a raw vocabulary string, or null. */
  tokenToId(token: string): number | null {
    return this.backend.tokenToId(token) ?? null;
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** ids of all special added tokens */
  get specialTokenIds(): number[] {
    return [...this.specialIds].sort((a, b) => a - b);
  }

  /**
   * The bytes a token stands for, for streaming output that must not split UTF-8 sequences: ByteLevel
   * characters mapped back to bytes; special tokens as their UTF-8 text.
   */
  tokenBytes(id: number): Uint8Array {
    const t = this.tokenToString(id);
    if (this.specialIds.has(id)) return new TextEncoder().encode(t);
    return this.backend.tokenBytes(id) ?? new TextEncoder().encode(this.decode([id]));
  }

  /** The special tokens passed to chat templates, as transformers does (bos_token, eos_token, ...). */
  specialTokensMap(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const c = tokenContent(this.tokenizerConfig[key]);
      if (c !== null) out[key] = c;
    }
    const extra = this.tokenizerConfig.additional_special_tokens;
    if (Array.isArray(extra)) out.additional_special_tokens = extra.map(tokenContent).filter((c): c is string => c !== null);
    return out;
  }

  /** Render the chat template (Jinja) over `messages`. */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null)
      throw new KvevictError(`${this.templateSource}: the tokenizer has no chat template (tokenizer_config.json "chat_template")`);
    if (!this.template) {
      try {
        this.template = new Template(this.chatTemplate);
      } catch (e) {
        throw new KvevictError(`${this.templateSource}: chat template does not parse (${(e as Error).message})`);
      }
    }
    try {
      return this.template.render({
        ...this.specialTokensMap(),
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
      });
    } catch (e) {
      throw new KvevictError(`${this.templateSource}: chat template failed (${(e as Error).message})`);
    }
  }

  /** The chat template rendered and tokenized (no special tokens added beyond those the template writes). */
  encodeChat(messages: ChatMessage[], opts: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts));
  }
}

function pickTemplate(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v as { name?: unknown; template?: unknown }[];
    const def = named.find((t) => t.name === 'default') ?? named[0];
    return typeof def?.template === 'string' ? def.template : null;
  }
  if (v && typeof v === 'object') {
    const d = (v as Json).default;
    return typeof d === 'string' ? d : null;
  }
  return null;
}

/** The Hugging Face tokenizers library over a tokenizer.json. */
function hfBackend(hf: HfTokenizer, byteLevel: boolean): TokenizerBackend {
  const vocab = hf.get_vocab(true);
  let maxId = -1;
  for (const id of vocab.values()) if (id > maxId) maxId = id;
  const idToToken = new Array<string>(maxId + 1);
  for (const [tok, id] of vocab) idToToken[id] = tok;
  const specials: number[] = [];
  for (const [id, t] of hf.get_added_tokens_decoder()) if (t.special) specials.push(id);
  return {
    size: maxId + 1,
    encode: (text) => hf.encode(text, { add_special_tokens: false }).ids,
    decode: (ids, skip) => hf.decode(ids, { skip_special_tokens: skip }),
    tokenToId: (t) => hf.token_to_id(t) ?? undefined,
    tokenString: (id) => idToToken[id],
    specialIds: () => specials,
    tokenBytes: (id) => {
      const t = idToToken[id];
      if (!byteLevel || t === undefined) return null;
      const table = byteDecoder();
      const out = new Uint8Array(t.length);
      let n = 0;
      for (const ch of t) {
        const b = table.get(ch);
        if (b === undefined) return null;
        out[n++] = b;
      }
      return out.subarray(0, n);
    },
  };
}

/** Does the tokenizer.json post-processor put `bos` in front of a single sequence (Llama's TemplateProcessing)? */
function postProcessorAdds(tokenizerJson: Json, bos: string | null): boolean {
  if (bos === null) return false;
  const visit = (pp: Json | null | undefined): boolean => {
    if (!pp) return false;
    if (pp.type === 'Sequence' && Array.isArray(pp.processors)) return (pp.processors as Json[]).some(visit);
    if (pp.type === 'TemplateProcessing' && Array.isArray(pp.single)) {
      const first = (pp.single as Json[])[0] as Json | undefined;
      return (first?.SpecialToken as Json | undefined)?.id === bos;
    }
    return false;
  };
  return visit(tokenizerJson.post_processor as Json | null | undefined);
}

/** A SentencePiece vocabulary (GGUF "llama") as a Tokenizer; `config` names its special tokens and flags. */
export function spmTokenizer(
  vocab: SpmVocab,
  config: Json,
  opts: { chatTemplate?: string | null; eosTokenIds?: number[] } = {},
): Tokenizer {
  const spm = new SpmBackend(vocab);
  const backend: TokenizerBackend = {
    size: spm.size,
    encode: (text) => spm.encode(text),
    decode: (ids, skip) => spm.decode(ids, skip),
    tokenToId: (t) => spm.tokenToId(t),
    tokenString: (id) => vocab.tokens[id],
    specialIds: () => vocab.tokens.map((_, id) => id).filter((id) => spm.isSpecial(id)),
    tokenBytes: (id) => spm.tokenBytes(id),
  };
  return new Tokenizer({ model: { type: 'SentencePieceBPE' } }, config, { ...opts, source: vocab.source, backend, spmVocab: vocab });
}

function isByteLevel(dec: Json | null | undefined): boolean {
  if (!dec) return false;
  if (dec.type === 'ByteLevel') return true;
  if (dec.type === 'Sequence' && Array.isArray(dec.decoders)) return (dec.decoders as Json[]).some((d) => isByteLevel(d));
  return false;
}

let byteDecoderMap: Map<string, number> | null = null;
function byteDecoder(): Map<string, number> {
  if (!byteDecoderMap) {
    byteDecoderMap = new Map();
    bytesToUnicode().forEach((c, b) => byteDecoderMap!.set(c, b));
  }
  return byteDecoderMap;
}

/** The `model` entry of a byte-level BPE tokenizer.json, as Hugging Face's tokenizers writes it. */
export function bpeModelJson(vocab: Record<string, number>, merges: readonly string[]): Record<string, unknown> {
  return {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: false,
    vocab,
    merges,
  };
}
