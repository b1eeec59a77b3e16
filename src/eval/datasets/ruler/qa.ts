import { existsSync, readFileSync } from 'node:fs';
import { KvevictError } from '../../../errors.js';
import type { Rng } from '../../../util/rng.js';
import { sample } from './random.js';
import { splitTemplate, type RulerSample } from './sample.js';
import { RULER_FAMILIES, fill } from './tasks.js';

export interface QaItem {
  query: string;
  outputs: string[];
  /** indices into docs of the gold documents */
  context: number[];
  /** other documents of the same article (SQuAD) */
  moreContext: number[];
}

export interface QaSource {
  qas: QaItem[];
  docs: string[];
}

type Json = Record<string, unknown>;

function indexDocs(all: string[]): { docs: string[]; index: Map<string, number> } {
  const docs = [...new Set(all)].sort();
  return { docs, index: new Map(docs.map((d, i) => [d, i])) };
}

/** read_squad: SQuAD v2 JSON ({data: [{paragraphs: [{context, qas: [...]}]}]}); unanswerable questions are skipped. */
export function readSquad(raw: unknown, file: string): QaSource {
  const data = (raw as Json | null)?.data;
  if (!Array.isArray(data)) throw new KvevictError(`${file}: not a SQuAD file (expected {"data": [...]})`);
  const articles = data as {
    paragraphs: { context: string; qas: { question: string; answers: { text: string }[]; is_impossible?: boolean }[] }[];
  }[];
  const { docs, index } = indexDocs(articles.flatMap((d) => d.paragraphs.map((p) => p.context)));
  const qas: QaItem[] = [];
  for (const d of articles) {
    const more = d.paragraphs.map((p) => index.get(p.context)!);
    for (const p of d.paragraphs) {
      const own = index.get(p.context)!;
      for (const q of p.qas) {
        if (q.is_impossible) continue;
        qas.push({ query: q.question, outputs: q.answers.map((a) => a.text), context: [own], moreContext: more.filter((i) => i !== own) });
      }
    }
  }
  return { qas, docs };
}

/** read_hotpotqa: HotpotQA JSON ([{question, answer, context: [[title, [sentences]]]}]). */
export function readHotpotQa(raw: unknown, file: string): QaSource {
  if (!Array.isArray(raw)) throw new KvevictError(`${file}: not a HotpotQA file (expected a JSON list)`);
  const items = raw as { question: string; answer: string; context: [string, string[]][] }[];
  const doc = (t: string, p: string[]) => `${t}\n${p.join('')}`;
  const { docs, index } = indexDocs(items.flatMap((d) => d.context.map(([t, p]) => doc(t, p))));
  const qas = items.map((d) => ({
    query: d.question,
    outputs: [d.answer],
    context: d.context.map(([t, p]) => index.get(doc(t, p))!),
    moreContext: [],
  }));
  return { qas, docs };
}

/** Load the QA source a RULER qa task needs; a missing file is a user error naming what to pass. */
export function loadQaSource(dataset: 'squad' | 'hotpotqa', file: string | undefined, task: string): QaSource {
  const what = dataset === 'squad' ? 'SQuAD v2 dev JSON (squad.json)' : 'HotpotQA dev distractor JSON (hotpotqa.json)';
  if (!file) throw new KvevictError(`ruler:${task} needs the ${what}, which is not shipped here: pass it with --qa-file FILE`);
  if (!existsSync(file)) throw new KvevictError(`${file}: QA file not found (ruler:${task} needs the ${what})`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new KvevictError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  const src = dataset === 'squad' ? readSquad(raw, file) : readHotpotQa(raw, file);
  if (src.qas.length === 0) throw new KvevictError(`${file}: no answerable questions`);
  return src;
}

/** One QA sample of RULER (scripts/data/synthetic/qa.py): the gold documents among `numDocs` distractors, shuffled. */
export function qaSample(rng: Rng, src: QaSource, index: number, numDocs: number): RulerSample {
  const q = src.qas[index % src.qas.length];
  let all: number[];
  if (numDocs < src.docs.length) {
    if (numDocs - q.context.length > q.moreContext.length) {
      const used = new Set([...q.context, ...q.moreContext]);
      const extra = src.docs.map((_, i) => i).filter((i) => !used.has(i));
      all = [
        ...q.context,
        ...q.moreContext,
        ...sample(rng, extra, Math.max(0, Math.min(extra.length, numDocs - q.context.length - q.moreContext.length))),
      ];
    } else {
      all = [...q.context, ...sample(rng, q.moreContext, Math.max(0, numDocs - q.context.length))];
    }
  } else {
    all = Array.from({ length: numDocs }, (_, i) => i % src.docs.length);
  }
  const docs = rng.shuffle(all.map((i) => src.docs[i]));
  const context = docs.map((d, i) => `Document ${i + 1}:\n${d}`).join('\n\n');
  const fam = RULER_FAMILIES.qa;
  const [pre, post] = splitTemplate(fam.template);
  const after = fill(post, { query: q.query });
  return { before: pre, context, after, question: q.query, answers: q.outputs, answerPrefix: fam.answerPrefix };
}
