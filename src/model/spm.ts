import { KvevictError } from '../errors.js';
import { GgufTokenType } from './gguf/format.js';

/** A SentencePiece BPE vocabulary as GGUF "llama" tokenizers store it. */
export interface SpmVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  /** tokenizer.ggml.add_space_prefix (llama.cpp's default: true) */
  addSpacePrefix: boolean;
  unkId: number | null;
  source: string;
}

/** SentencePiece's visible space. */
const SPACE = '\u2581';

/** A max-heap of candidate merges: highest score first, then the leftmost. */
class MergeQueue {
  private items: { left: number; right: number; score: number; size: number }[] = [];
  private before(a: MergeQueue['items'][number], b: MergeQueue['items'][number]): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }
  get length(): number {
    return this.items.length;
  }
  push(item: MergeQueue['items'][number]): void {
    const h = this.items;
    h.push(item);
    for (let i = h.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): MergeQueue['items'][number] {
    const h = this.items;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l], h[m])) m = l;
        if (r < h.length && this.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * SentencePiece BPE as llama.cpp runs it for "llama" vocabularies: spaces become U+2581 (with one in front
 * of text that starts the input or follows a special token, when add_space_prefix), the text is split into
 * characters, and the adjacent pair whose concatenation is a token with the highest score is merged until
 * none is left (ties to the leftmost); a symbol that is not a token falls back to its UTF-8 bytes
 * (<0xXX> tokens). Special (control and user-defined) tokens written in the text are recognized whole.
 */
export class SpmBackend {
  private readonly ids = new Map<string, number>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** special token texts, longest first, for splitting the input */
  private readonly specials: { text: string; id: number }[] = [];

  constructor(readonly vocab: SpmVocab) {
    const { tokens, types } = vocab;
    tokens.forEach((t, id) => {
      if (types[id] === GgufTokenType.UNUSED) return;
      if (!this.ids.has(t)) this.ids.set(t, id);
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
      if (types[id] === GgufTokenType.BYTE && m) this.byteIds[parseInt(m[1], 16)] = id;
      if ((types[id] === GgufTokenType.CONTROL || types[id] === GgufTokenType.USER_DEFINED) && t.length > 0)
        this.specials.push({ text: t, id });
    });
    this.specials.sort((a, b) => b.text.length - a.text.length);
  }

  get size(): number {
    return this.vocab.tokens.length;
  }

  tokenToId(t: string): number | undefined {
    return this.ids.get(t);
  }

  isSpecial(id: number): boolean {
    const ty = this.vocab.types[id];
    return ty === GgufTokenType.CONTROL || ty === GgufTokenType.USER_DEFINED || ty === GgufTokenType.UNKNOWN;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    let prevSpecial = true;
    for (const part of this.splitSpecials(text)) {
      if (typeof part === 'number') {
        out.push(part);
        prevSpecial = true;
        continue;
      }
      const t = (this.vocab.addSpacePrefix && prevSpecial ? ' ' : '') + part;
      this.encodePiece(t.replaceAll(' ', SPACE), out);
      prevSpecial = false;
    }
    return out;
  }

  private splitSpecials(text: string): (string | number)[] {
    const parts: (string | number)[] = [];
    let start = 0,
      i = 0;
    while (i < text.length) {
      const hit = this.specials.find((s) => text.startsWith(s.text, i));
      if (!hit) {
        i++;
        continue;
      }
      if (i > start) parts.push(text.slice(start, i));
      parts.push(hit.id);
      i += hit.text.length;
      start = i;
    }
    if (start < text.length) parts.push(text.slice(start));
    return parts;
  }

  private encodePiece(text: string, out: number[]): void {
    const sym = Array.from(text); // code points
    const next = sym.map((_, i) => (i + 1 < sym.length ? i + 1 : -1));
    const prev = sym.map((_, i) => i - 1);
    const q = new MergeQueue();
    const tryPair = (l: number, r: number) => {
      if (l < 0 || r < 0) return;
      const id = this.ids.get(sym[l] + sym[r]);
      if (id === undefined) return;
      q.push({ left: l, right: r, score: this.vocab.scores[id] ?? 0, size: sym[l].length + sym[r].length });
    };
    for (let i = 1; i < sym.length; i++) tryPair(i - 1, i);
    while (q.length > 0) {
      const b = q.pop();
      // stale: one side was merged away or grew since this pair was queued
      if (sym[b.left] === '' || sym[b.right] === '' || sym[b.left].length + sym[b.right].length !== b.size || next[b.left] !== b.right)
        continue;
      sym[b.left] += sym[b.right];
      sym[b.right] = '';
      next[b.left] = next[b.right];
      if (next[b.right] >= 0) prev[next[b.right]] = b.left;
      tryPair(prev[b.left], b.left);
      tryPair(b.left, next[b.left]);
    }
    for (let i = 0; i >= 0 && i < sym.length; i = next[i]) {
      const id = this.ids.get(sym[i]);
      if (id !== undefined && this.vocab.types[id] !== GgufTokenType.BYTE) {
        out.push(id);
        continue;
      }
      for (const byte of Buffer.from(sym[i], 'utf8')) {
        const b = this.byteIds[byte];
        if (b >= 0) out.push(b);
        else if (this.vocab.unkId !== null) out.push(this.vocab.unkId);
        else throw new KvevictError(`${this.vocab.source}: byte 0x${byte.toString(16)} has no <0x..> token and there is no unknown token`);
      }
    }
  }

  /** The bytes a token stands for: byte tokens their byte, others their text with U+2581 as a space. */
  tokenBytes(id: number): Uint8Array {
    const t = this.vocab.tokens[id];
    if (this.vocab.types[id] === GgufTokenType.BYTE) {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
      if (m) return Uint8Array.of(parseInt(m[1], 16));
    }
    return new TextEncoder().encode(t.replaceAll(SPACE, ' '));
  }

  /**
   * Text of ids: byte tokens joined into UTF-8, spaces restored, special tokens dropped when asked, and the
   * space that add_space_prefix put in front of the text removed (as llama.cpp and Hugging Face decode).
   */
  decode(ids: number[], skipSpecial: boolean): string {
    const bytes: number[] = [];
    let first = true;
    for (const id of ids) {
      if (skipSpecial && this.isSpecial(id)) continue;
      let b = this.tokenBytes(id);
      if (first && this.vocab.addSpacePrefix && b[0] === 0x20 && !this.isSpecial(id)) b = b.subarray(1);
      first = false;
      for (const x of b) bytes.push(x);
    }
    return Buffer.from(bytes).toString('utf8');
  }
}

/**
 * A SentencePiece BPE vocabulary as a Hugging Face tokenizer.json (the Llama-2 layout: a BPE model with byte
 * fallback, "▁" for spaces, the space prefix as a Prepend normalizer). Merges come from the scores as Hugging
 * Face's SentencePiece converter derives them: every split of a piece into two pieces of the vocabulary, the
 * highest-scoring merged piece first, so that the lowest-rank merge is the highest-score one llama.cpp picks.
 */
export function spmTokenizerJson(vocab: SpmVocab, opts: { bosId: number | null; addBos: boolean }): Record<string, unknown> {
  const { tokens, types, scores } = vocab;
  const ids = new Map<string, number>();
  tokens.forEach((t, id) => {
    if (types[id] !== GgufTokenType.UNUSED && !ids.has(t)) ids.set(t, id);
  });
  const pieces = (id: number) => types[id] === GgufTokenType.NORMAL || types[id] === GgufTokenType.USER_DEFINED;
  const merges: { l: string; r: string; score: number; order: number }[] = [];
  tokens.forEach((t, id) => {
    if (!pieces(id)) return;
    const cps = Array.from(t);
    const local: { l: string; r: string }[] = [];
    for (let i = 1; i < cps.length; i++) {
      const l = cps.slice(0, i).join(''),
        r = cps.slice(i).join('');
      const li = ids.get(l),
        ri = ids.get(r);
      if (li !== undefined && ri !== undefined && pieces(li) && pieces(ri)) local.push({ l, r });
    }
    local.sort((a, b) => ids.get(a.l)! - ids.get(b.l)! || ids.get(a.r)! - ids.get(b.r)!);
    for (const m of local) merges.push({ ...m, score: scores[id] ?? 0, order: merges.length });
  });
  merges.sort((a, b) => b.score - a.score || a.order - b.order);
  const special = (id: number) => types[id] === GgufTokenType.CONTROL || types[id] === GgufTokenType.UNKNOWN;
  const added = tokens
    .map((content, id) => ({ id, content }))
    .filter(({ id }) => special(id) || types[id] === GgufTokenType.USER_DEFINED)
    .map(({ id, content }) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: special(id) }));
  const vocabObj: Record<string, number> = {};
  tokens.forEach((t, id) => {
    if (!(t in vocabObj)) vocabObj[t] = id;
  });
  const bos = opts.bosId !== null ? tokens[opts.bosId] : null;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        ...(vocab.addSpacePrefix ? [{ type: 'Prepend', prepend: SPACE }] : []),
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor:
      opts.addBos && bos !== null
        ? {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [
              { SpecialToken: { id: bos, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: bos, type_id: 1 } },
              { Sequence: { id: 'B', type_id: 1 } },
            ],
            special_tokens: { [bos]: { id: bos, ids: [opts.bosId], tokens: [bos] } },
          }
        : null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(vocab.addSpacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: vocab.unkId !== null ? tokens[vocab.unkId] : null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: vocabObj,
      merges: merges.map((m) => [m.l, m.r]),
    },
  };
}
