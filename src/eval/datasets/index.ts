import { existsSync } from 'node:fs';
import { KvevictError } from '../../errors.js';
import type { LoadedDataset } from '../case.js';
import { chatWrapper, type TextTokenizer } from '../prompt.js';
import { haystackText } from './haystack.js';
import { loadLongBench } from './longbench.js';
import { CLASSIC_NEEDLE, CLASSIC_QUESTION, DEFAULT_DEPTHS, needleDataset, type Needle } from './needle.js';
import { loadPlain } from './plain.js';
import { loadRulerFile } from './ruler-file.js';
import { rulerDataset } from './ruler/index.js';
import { RULER_TASK_NAMES } from './ruler/tasks.js';

export interface DatasetOptions {
  tokenizer: TextTokenizer;
  /** the model's context length in tokens */
  maxContext: number;
  /** the embedded reference model: haystacks come from its held-out essays */
  embeddedModel: boolean;
  /** keep the first N cases */
  samples?: number;
  seed: number;
  /** niah: haystack lengths; ruler:<task>: target lengths (default: the model's context) */
  lengths?: number[];
  /** niah: depths in percent */
  depths?: number[];
  /** niah: a user-given needle instead of the classic one */
  needle?: Needle;
  /** ruler:qa_1 / qa_2: the SQuAD / HotpotQA file */
  qaFile?: string;
}

export const DATASET_FORMS = 'niah | ruler:<task> | ruler:FILE.jsonl | longbench:<file> | FILE.jsonl';

/** Default needle lengths: four even steps up to the longest haystack that leaves room for question and answer. */
export function defaultNeedleLengths(tok: TextTokenizer, maxContext: number, needle: Needle): number[] {
  const wrap = chatWrapper(tok);
  const overhead = wrap ? tok.encode(wrap.header).length + tok.encode(wrap.footer).length : 0;
  const answer = tok.encode(needle.needle).length + 16;
  const room = maxContext - overhead - answer - tok.encode(`\n\n${needle.question}`).length - 4;
  const needleLen = tok.encode(` ${needle.needle}`).length;
  if (room <= needleLen + 8) throw new KvevictError(`niah: a context of ${maxContext} tokens is too short for the needle`);
  const top = Math.floor(room / 8) * 8;
  return [0.25, 0.5, 0.75, 1].map((f) => Math.max(needleLen + 8, Math.floor((top * f) / 8) * 8));
}

/**
 * Load a dataset named on the command line: `niah`, `ruler:<task>` (generated), `ruler:FILE.jsonl`
 * (a RULER file), `longbench:<file>` (a LongBench file, or a name under ../shared/data/longbench) or a
 * plain JSONL file.
 */
export function loadDataset(spec: string, opts: DatasetOptions): LoadedDataset {
  let ds: LoadedDataset;
  if (spec === 'niah') {
    const needle = opts.needle ?? { needle: CLASSIC_NEEDLE, question: CLASSIC_QUESTION };
    ds = needleDataset({
      tokenizer: opts.tokenizer,
      haystack: haystackText(opts.embeddedModel),
      lengths: opts.lengths ?? defaultNeedleLengths(opts.tokenizer, opts.maxContext, needle),
      depths: opts.depths ?? DEFAULT_DEPTHS,
      needles: [needle],
    });
  } else if (spec.startsWith('ruler:')) {
    const what = spec.slice('ruler:'.length);
    if (RULER_TASK_NAMES.includes(what)) {
      const lengths = opts.lengths ?? [opts.maxContext];
      const parts = lengths.map((len) =>
        rulerDataset(what, {
          tokenizer: opts.tokenizer,
          maxSeqLength: len,
          numSamples: opts.samples ?? 10,
          seed: opts.seed,
          essay: haystackText(opts.embeddedModel),
          qaFile: opts.qaFile,
        }),
      );
      ds = { name: spec, cases: parts.flatMap((p) => p.cases), problems: [] };
    } else if (what.endsWith('.jsonl') || existsSync(what)) {
      ds = loadRulerFile(what, spec);
    } else {
      throw new KvevictError(`--dataset: unknown RULER task "${what}" (tasks: ${RULER_TASK_NAMES.join(', ')}; or ruler:FILE.jsonl)`);
    }
  } else if (spec.startsWith('longbench:')) {
    ds = loadLongBench(spec.slice('longbench:'.length), spec);
  } else if (spec.endsWith('.jsonl')) {
    ds = loadPlain(spec);
  } else {
    throw new KvevictError(`--dataset: unknown dataset "${spec}" (${DATASET_FORMS})`);
  }
  if (opts.samples !== undefined) ds = { ...ds, cases: ds.cases.slice(0, opts.samples) };
  return ds;
}
