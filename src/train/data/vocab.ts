import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { sharedData } from '../../paths.js';
import { KvevictError } from '../../errors.js';
import { CHATML_TEMPLATE, makeByteTokenizerConfig, makeByteTokenizerJson } from '../../model/tokenizer.js';

/**
 * The vocabulary a model is trained with: how text becomes ids, where the three ChatML specials are, and
 * the tokenizer files written next to the weights (which the engine's loader reads back).
 */
export interface TrainVocab {
  /** recorded in checkpoints: a resumed run must use the same vocabulary */
  readonly name: string;
  readonly size: number;
  readonly endOfText: number;
  readonly imStart: number;
  readonly imEnd: number;
  /** characters per token on English prose, to size generated text before it is encoded */
  readonly charsPerToken: number;
  /** plain text to ids (special-token strings are not expected in training text) */
  encode(text: string): number[];
  /**
   * The text of the vocabulary's letter tokens (" Francis", "ores"; the byte-level space mark as a space):
   * copying random runs of them trains every such token's embedding, so a name no training text contains (the
   * needle's held-out "San Francisco") can still be copied piece by piece.
   */
  readonly pieces?: readonly string[];
  tokenizerJson(): object;
  tokenizerConfig(): object;
}

export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

/** Bytes 0..255 then the three specials (256, 257, 258): the first reference model's vocabulary. */
export const BYTE_VOCAB: TrainVocab = {
  name: 'bytes',
  size: 259,
  endOfText: 256,
  imStart: 257,
  imEnd: 258,
  charsPerToken: 1,
  encode: (text) => Array.from(Buffer.from(text, 'utf8')),
  tokenizerJson: () => makeByteTokenizerJson([...SPECIAL_TOKENS]),
  tokenizerConfig: () => makeByteTokenizerConfig([...SPECIAL_TOKENS]),
};

/** SmolLM2's tokenizer: 17 specials (ids 0-16, ChatML first), 235 byte characters (17-251), then merges in order. */
const SMOLLM2_DIR = join(sharedData, 'tokenizers', 'SmolLM2-135M-Instruct');
const SMOLLM2_FIRST_MERGE_ID = 252;

type Json = Record<string, unknown>;

/**
 * SmolLM2's byte-level BPE cut to its first `size` ids: the ids are assigned in merge order, so keeping the
 * first `size - 252` merges keeps exactly the tokens with id < size, and the cut tokenizer encodes with the
 * same rules (digits split one per token, GPT-2 byte-level pre-tokenization). The result is a standard
 * tokenizer.json.
 */
export function cutSmolLM2Tokenizer(size: number): Json {
  const file = join(SMOLLM2_DIR, 'tokenizer.json');
  if (!existsSync(file)) throw new KvevictError(`${file}: SmolLM2 tokenizer not found (the shared data folder)`);
  if (!Number.isInteger(size) || size <= SMOLLM2_FIRST_MERGE_ID || size > 49152)
    throw new KvevictError(`vocabulary size ${size} must be an integer in 253..49152`);
  const t = JSON.parse(readFileSync(file, 'utf8')) as Json;
  const model = t.model as Json;
  const vocab = model.vocab as Record<string, number>;
  const merges = model.merges as (string | [string, string])[];
  const kept: Record<string, number> = {};
  for (const [s, id] of Object.entries(vocab)) if (id < size) kept[s] = id;
  const cut = merges.slice(0, size - SMOLLM2_FIRST_MERGE_ID);
  cut.forEach((m, i) => {
    const [a, b] = typeof m === 'string' ? m.split(' ') : m;
    if (kept[a + b] !== SMOLLM2_FIRST_MERGE_ID + i || kept[a] === undefined || kept[b] === undefined) {
      throw new KvevictError(
        `${file}: merge ${i} does not produce id ${SMOLLM2_FIRST_MERGE_ID + i}; the tokenizer is not the expected SmolLM2 one`,
      );
    }
  });
  return {
    ...t,
    added_tokens: (t.added_tokens as Json[]).filter((a) => (a.id as number) < size),
    post_processor: null,
    model: { ...model, vocab: kept, merges: cut },
  };
}

function smolConfig(size: number): Json {
  const src = JSON.parse(readFileSync(join(SMOLLM2_DIR, 'tokenizer_config.json'), 'utf8')) as Json;
  const decoder: Record<string, unknown> = {};
  for (const [id, v] of Object.entries(src.added_tokens_decoder as Json)) if (Number(id) < size) decoder[id] = v;
  return {
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    bos_token: '<|im_start|>',
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: '<|endoftext|>',
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: 8192,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
}

const cache = new Map<string, TrainVocab>();

/** `smollm2:SIZE`: SmolLM2's tokenizer cut to SIZE ids (ChatML specials at 0, 1, 2). */
export function smolLM2Vocab(size: number): TrainVocab {
  const name = `smollm2:${size}`;
  const hit = cache.get(name);
  if (hit) return hit;
  const json = cutSmolLM2Tokenizer(size);
  const config = smolConfig(size);
  const hf = new HfTokenizer(json, config);
  const v: TrainVocab = {
    name,
    size,
    endOfText: 0,
    imStart: 1,
    imEnd: 2,
    charsPerToken: 3.6,
    encode: (text) => hf.encode(text, { add_special_tokens: false }).ids,
    pieces: Object.entries((json.model as Json).vocab as Record<string, number>)
      .filter(([t, id]) => id >= SMOLLM2_FIRST_MERGE_ID && /^\u0120?[A-Za-z]{2,}$/.test(t))
      .sort((a, b) => a[1] - b[1])
      .map(([t]) => t.replace('\u0120', ' ')),
    tokenizerJson: () => json,
    tokenizerConfig: () => config,
  };
  cache.set(name, v);
  return v;
}

/** A vocabulary by its name: `bytes` or `smollm2:SIZE`. */
export function vocabByName(name: string): TrainVocab {
  if (name === 'bytes') return BYTE_VOCAB;
  const m = /^smollm2:(\d+)$/.exec(name);
  if (m) return smolLM2Vocab(Number(m[1]));
  throw new KvevictError(`vocabulary "${name}" is not one of: bytes, smollm2:SIZE (e.g. smollm2:8192)`);
}
