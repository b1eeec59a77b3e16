import type { Dialogue, PlainText, Sample } from './tasks.js';
import { BYTE_VOCAB, SPECIAL_TOKENS, type TrainVocab } from './vocab.js';

export { SPECIAL_TOKENS };
/** The byte-level vocabulary's ids: 0..255 are bytes, then the special tokens. */
export const END_OF_TEXT = BYTE_VOCAB.endOfText;
export const IM_START = BYTE_VOCAB.imStart;
export const IM_END = BYTE_VOCAB.imEnd;
export const BYTE_VOCAB_SIZE = BYTE_VOCAB.size;

/** Loss weight of context and question tokens (answers weigh 1). */
export const CONTEXT_WEIGHT = 0.1;
/** Loss weight of the template tokens around turns. */
export const TEMPLATE_WEIGHT = 0.05;

/** A token sequence with per-target weights: weights[i] weighs predicting ids[i + 1] from ids[..i]. */
export interface Encoded {
  ids: Int32Array;
  weights: Float32Array;
  /** target index ranges [start, end) of each answer (including its <|im_end|>), for exact-match scoring */
  answers: { start: number; end: number }[];
  task: Sample['task'];
}

class Builder {
  ids: number[] = [];
  w: number[] = [];
  constructor(readonly vocab: TrainVocab) {}
  push(id: number, weight: number): void {
    this.ids.push(id);
    this.w.push(weight);
  }
  text(s: string, weight: number): void {
    for (const id of this.vocab.encode(s)) this.push(id, weight);
  }
}

function finish(b: Builder, answers: { start: number; end: number }[], task: Sample['task']): Encoded {
  // token t is predicted from position t - 1: shift weights left by one
  const n = b.ids.length;
  const weights = new Float32Array(Math.max(0, n - 1));
  for (let i = 0; i + 1 < n; i++) weights[i] = b.w[i + 1];
  return { ids: Int32Array.from(b.ids), weights, answers: answers.map((a) => ({ start: a.start - 1, end: a.end - 1 })), task };
}

/** The user's first message: context, a blank line, the question (the chat template's prompt). */
export function userMessage(context: string, question: string): string {
  return context ? `${context}\n\n${question}` : question;
}

/**
 * ChatML (as tokenizer_config.json's chat template) with loss weights. Text is encoded in the pieces the
 * evaluation encodes (the header with the context, then the question with the template's end), so that a
 * subword vocabulary splits both the same way.
 */
export function encodeDialogue(d: Dialogue, vocab: TrainVocab = BYTE_VOCAB): Encoded {
  const b = new Builder(vocab);
  const answers: { start: number; end: number }[] = [];
  d.turns.forEach((t, i) => {
    b.push(vocab.imStart, TEMPLATE_WEIGHT);
    b.text('user\n', TEMPLATE_WEIGHT);
    if (i === 0 && d.context) {
      b.text(d.context, CONTEXT_WEIGHT);
      b.text(`\n\n${t.question}`, CONTEXT_WEIGHT);
    } else {
      b.text(t.question, CONTEXT_WEIGHT);
    }
    b.push(vocab.imEnd, TEMPLATE_WEIGHT);
    b.text('\n', TEMPLATE_WEIGHT);
    b.push(vocab.imStart, TEMPLATE_WEIGHT);
    b.text('assistant\n', TEMPLATE_WEIGHT);
    const start = b.ids.length;
    b.text(t.answer, 1);
    b.push(vocab.imEnd, 1);
    answers.push({ start, end: b.ids.length });
    b.text('\n', TEMPLATE_WEIGHT);
  });
  return finish(b, answers, d.task);
}

export function encodeText(t: PlainText, vocab: TrainVocab = BYTE_VOCAB): Encoded {
  const b = new Builder(vocab);
  b.text(t.text, 1);
  return finish(b, [], 'text');
}

export function encodeSample(s: Sample, vocab: TrainVocab = BYTE_VOCAB): Encoded {
  return s.task === 'text' ? encodeText(s, vocab) : encodeDialogue(s, vocab);
}

/** Token ids of a prompt for generation: the first user turn and the assistant header. */
export function encodePrompt(context: string, question: string, vocab: TrainVocab = BYTE_VOCAB): Int32Array {
  const b = new Builder(vocab);
  b.push(vocab.imStart, 0);
  b.text('user\n', 0);
  if (context) {
    b.text(context, 0);
    b.text(`\n\n${question}`, 0);
  } else {
    b.text(question, 0);
  }
  b.push(vocab.imEnd, 0);
  b.text('\n', 0);
  b.push(vocab.imStart, 0);
  b.text('assistant\n', 0);
  return Int32Array.from(b.ids);
}
