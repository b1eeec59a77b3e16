import { loadModelDir } from '../model/load.js';
import { LlamaModel } from '../model/llama.js';
import { runQueryAware } from '../generate/pipeline.js';
import { makePress } from '../press/index.js';
import { needleRecall } from '../eval/metrics/needle.js';
import { Rng } from '../util/rng.js';
import { loadCorpus, type Corpus } from './data/corpus.js';
import { END_OF_TEXT, IM_END, encodePrompt } from './data/encode.js';
import { insertAtDepths } from './data/haystack.js';
import { TASKS, makeDialogue, type TaskName } from './data/tasks.js';
import { NIAH_NEEDLE, NIAH_QUESTION } from '../eval/datasets/split.js';
import { windowedNll } from './perplexity.js';

/** Held-out results of a model folder with greedy decoding (the figures of the model card). */
export interface CardEval {
  model: string;
  /** needle recall and exact match by prompt length, per depth (percent) */
  niah: { length: number; depth: number; recall: number; exact: number; streamingRecall: number; answer: string }[];
  niahByLength: Record<string, { recall: number; exact: number; streamingRecall: number }>;
  tasks: Record<string, { exact: number; recall: number; n: number }>;
  perplexity: number;
  perplexityTokens: number;
  seconds: number;
}

export interface CardEvalOptions {
  lengths: number[];
  depths: number[];
  perTask: number;
  taskLength: number;
  perplexityTokens: number;
  /** StreamingLLM keeps this fraction of the prompt in the comparison row */
  streamingKeep: number;
  maxNewTokens: number;
  log?: (line: string) => void;
}

export const DEFAULT_CARD_EVAL: CardEvalOptions = {
  lengths: [1024, 2048, 4096],
  depths: [0, 10, 25, 50, 75, 90, 100],
  perTask: 10,
  taskLength: 1024,
  perplexityTokens: 16384,
  streamingKeep: 0.1,
  maxNewTokens: 112,
};

const text = (ids: number[]) =>
  Buffer.from(ids.filter((i) => i < 256))
    .toString('utf8')
    .trim();
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** A needle prompt of exactly about `length` tokens (template included) from the held-out essays. */
function niahPrompt(corpus: Corpus, length: number, depth: number): Int32Array {
  let chars = length - 80 - NIAH_NEEDLE.length;
  for (;;) {
    const ids = encodePrompt(
      insertAtDepths(corpus.heldOutText.slice(0, chars), [{ sentence: NIAH_NEEDLE, depth: depth / 100 }]),
      NIAH_QUESTION,
    );
    if (ids.length <= length) return ids;
    chars -= ids.length - length;
  }
}

/** Greedy-decode held-out needles (full cache and StreamingLLM), per-task samples, and held-out perplexity. */
export async function evaluateCard(dir: string, o: CardEvalOptions = DEFAULT_CARD_EVAL, corpus: Corpus = loadCorpus()): Promise<CardEval> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const loaded = loadModelDir(dir);
  const model = new LlamaModel(loaded.config, loaded.weights);
  const stop = [IM_END, END_OF_TEXT];
  const maxPos = loaded.config.maxPositions;
  const generate = async (prompt: Int32Array, keep: number | null) => {
    const press = keep === null ? null : makePress('streaming', { ratio: 1 - keep });
    const r = await runQueryAware(model, prompt, press, {
      maxNewTokens: Math.min(o.maxNewTokens, maxPos - prompt.length),
      stopTokens: stop,
    });
    return text(r.tokens);
  };
  const niah: CardEval['niah'] = [];
  for (const L of o.lengths) {
    for (const depth of o.depths) {
      const prompt = niahPrompt(corpus, Math.min(L, maxPos - o.maxNewTokens), depth);
      const answer = await generate(prompt, null);
      const streaming = await generate(prompt, o.streamingKeep);
      const row = {
        length: L,
        depth,
        recall: needleRecall(answer, NIAH_NEEDLE),
        exact: answer === NIAH_NEEDLE ? 1 : 0,
        streamingRecall: needleRecall(streaming, NIAH_NEEDLE),
        answer,
      };
      niah.push(row);
      log(
        `niah ${L} depth ${depth}: recall ${row.recall.toFixed(2)} streaming ${row.streamingRecall.toFixed(2)}  "${answer.slice(0, 100)}"`,
      );
    }
  }
  const niahByLength: CardEval['niahByLength'] = {};
  for (const L of o.lengths) {
    const rows = niah.filter((r) => r.length === L);
    niahByLength[L] = {
      recall: mean(rows.map((r) => r.recall)),
      exact: mean(rows.map((r) => r.exact)),
      streamingRecall: mean(rows.map((r) => r.streamingRecall)),
    };
  }
  const tasks: CardEval['tasks'] = {};
  const rng = new Rng(777);
  for (const task of TASKS.filter((t): t is TaskName => t !== 'instruct' && t !== 'repeat')) {
    const ex: number[] = [],
      rec: number[] = [];
    for (let i = 0; i < o.perTask; i++) {
      // a generator may overshoot a short length: shrink until the prompt and answer fit the model
      let d = makeDialogue(task, rng, corpus, 'heldout', o.taskLength);
      for (
        let len = o.taskLength;
        encodePrompt(d.context, d.turns[0].question).length > Math.min(o.taskLength, maxPos - o.maxNewTokens) && len > 16;
      ) {
        len = Math.floor(len * 0.8);
        d = makeDialogue(task, rng, corpus, 'heldout', len);
      }
      const prompt = encodePrompt(d.context, d.turns[0].question);
      if (prompt.length > maxPos - o.maxNewTokens) continue; // the task's instructions alone do not fit this model
      const gold = d.turns[0].answer;
      const answer = await generate(prompt, null);
      ex.push(answer === gold ? 1 : 0);
      rec.push(needleRecall(answer, gold));
    }
    tasks[task] = { exact: mean(ex), recall: mean(rec), n: ex.length };
    log(`task ${task}: exact ${tasks[task].exact.toFixed(2)} recall ${tasks[task].recall.toFixed(2)}`);
  }
  // perplexity of held-out essay bytes, 1024-token windows
  const bytes = Buffer.from(corpus.heldOutText, 'utf8');
  const W = Math.min(1024, maxPos);
  const { nll, count } = windowedNll(model, bytes, W, o.perplexityTokens);
  return {
    model: dir,
    niah,
    niahByLength,
    tasks,
    perplexity: Math.exp(nll / Math.max(1, count)),
    perplexityTokens: count,
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Markdown tables of an evaluation, for the model card. */
export function cardTables(e: CardEval): string {
  const out: string[] = [];
  const lengths = Object.keys(e.niahByLength);
  out.push('| prompt tokens | needle recall (full cache) | exact answer | StreamingLLM, 10% kept: recall |', '|---|---|---|---|');
  for (const L of lengths) {
    const r = e.niahByLength[L];
    out.push(`| ${L} | ${(r.recall * 100).toFixed(1)}% | ${(r.exact * 100).toFixed(1)}% | ${(r.streamingRecall * 100).toFixed(1)}% |`);
  }
  const depths = [...new Set(e.niah.map((r) => r.depth))];
  out.push('', `| depth \\ tokens | ${lengths.join(' | ')} |`, `|---|${lengths.map(() => '---').join('|')}|`);
  for (const d of depths) {
    out.push(
      `| ${d}% | ${lengths
        .map((L) => {
          const r = e.niah.find((x) => x.depth === d && String(x.length) === L);
          return r ? `${(r.recall * 100).toFixed(0)}%` : '';
        })
        .join(' | ')} |`,
    );
  }
  out.push('', '| task (held-out keys and wordings) | exact answer | word recall | samples |', '|---|---|---|---|');
  for (const [t, r] of Object.entries(e.tasks))
    out.push(`| ${t} | ${(r.exact * 100).toFixed(0)}% | ${(r.recall * 100).toFixed(0)}% | ${r.n} |`);
  out.push('', `Held-out essay perplexity (bytes, 1,024-token windows, ${e.perplexityTokens} tokens): **${e.perplexity.toFixed(3)}**`);
  return out.join('\n') + '\n';
}
