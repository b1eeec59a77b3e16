import type { Dialogue, PlainText, Sample } from './tasks.js';

/** The byte-level vocabulary: ids 0..255 are bytes, then these special tokens. */
export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
export const END_OF_TEXT = 256;
export const IM_START = 257;
export const IM_END = 258;
export const BYTE_VOCAB_SIZE = 259;

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
  push(id: number, weight: number): void {
    this.ids.push(id);
    this.w.push(weight);
  }
  text(s: string, weight: number): void {
    for (const b of Buffer.from(s, 'utf8')) this.push(b, weight);
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

/** ChatML (as tokenizer_config.json's chat template) with loss weights. */
export function encodeDialogue(d: Dialogue): Encoded {
  const b = new Builder();
  const answers: { start: number; end: number }[] = [];
  d.turns.forEach((t, i) => {
    b.push(IM_START, TEMPLATE_WEIGHT);
    b.text('user\n', TEMPLATE_WEIGHT);
    b.text(i === 0 ? userMessage(d.context, t.question) : t.question, CONTEXT_WEIGHT);
    b.push(IM_END, TEMPLATE_WEIGHT);
    b.text('\n', TEMPLATE_WEIGHT);
    b.push(IM_START, TEMPLATE_WEIGHT);
    b.text('assistant\n', TEMPLATE_WEIGHT);
    const start = b.ids.length;
    b.text(t.answer, 1);
    b.push(IM_END, 1);
    answers.push({ start, end: b.ids.length });
    b.text('\n', TEMPLATE_WEIGHT);
  });
  return finish(b, answers, d.task);
}

export function encodeText(t: PlainText): Encoded {
  const b = new Builder();
  b.text(t.text, 1);
  return finish(b, [], 'text');
}

export function encodeSample(s: Sample): Encoded {
  return s.task === 'text' ? encodeText(s) : encodeDialogue(s);
}

/** Token ids of a prompt for generation: the first user turn and the assistant header. */
export function encodePrompt(context: string, question: string): Int32Array {
  const b = new Builder();
  b.push(IM_START, 0);
  b.text('user\n', 0);
  b.text(userMessage(context, question), 0);
  b.push(IM_END, 0);
  b.text('\n', 0);
  b.push(IM_START, 0);
  b.text('assistant\n', 0);
  return Int32Array.from(b.ids);
}
