import { KvevictError } from '../../../errors.js';
import type { MetricName } from '../../metrics/index.js';

/**
 * RULER's task families and its 13 tasks (NVIDIA/RULER scripts/data/synthetic/constants.py and
 * scripts/synthetic.yaml), with the templates, answer prefixes and generation lengths it uses.
 */
export type RulerFamily = 'niah' | 'variable_tracking' | 'common_words_extraction' | 'freq_words_extraction' | 'qa';

export interface RulerFamilySpec {
  tokensToGenerate: number;
  template: string;
  answerPrefix: string;
}

export const RULER_FAMILIES: Record<RulerFamily, RulerFamilySpec> = {
  niah: {
    tokensToGenerate: 128,
    template:
      'Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic {type_needle_v} for {query} mentioned in the provided text?',
    answerPrefix: ' The special magic {type_needle_v} for {query} mentioned in the provided text are',
  },
  variable_tracking: {
    tokensToGenerate: 30,
    template:
      'Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\nQuestion: Find all variables that are assigned the value {query} in the text above.',
    answerPrefix:
      ' Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are assigned the value {query}, they are: ',
  },
  common_words_extraction: {
    tokensToGenerate: 120,
    template:
      'Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?',
    answerPrefix: ' Answer: The top 10 words that appear most often in the list are:',
  },
  freq_words_extraction: {
    tokensToGenerate: 50,
    template:
      "Read the following coded text and track the frequency of each coded word. Find the three most frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text?",
    answerPrefix: ' Answer: According to the coded text above, the three most frequently appeared words are:',
  },
  qa: {
    tokensToGenerate: 32,
    template:
      'Answer the question based on the given documents. Only give me the answer and do not output any other words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the given documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}',
    answerPrefix: ' Answer:',
  },
};

export type NeedleKind = 'numbers' | 'words' | 'uuids';
export type HaystackKind = 'noise' | 'essay' | 'needle';

export interface NiahArgs {
  typeHaystack: HaystackKind;
  typeNeedleK: NeedleKind;
  typeNeedleV: NeedleKind;
  numNeedleK: number;
  numNeedleV: number;
  numNeedleQ: number;
}

export type RulerTaskSpec =
  | { family: 'niah'; args: NiahArgs }
  | { family: 'variable_tracking'; args: { numChains: number; numHops: number } }
  | { family: 'common_words_extraction'; args: { freqCw: number; freqUcw: number; numCw: number } }
  | { family: 'freq_words_extraction'; args: { alpha: number } }
  | { family: 'qa'; args: { dataset: 'squad' | 'hotpotqa' } };

const niah = (
  typeHaystack: HaystackKind,
  typeNeedleK: NeedleKind,
  typeNeedleV: NeedleKind,
  numNeedleK: number,
  numNeedleV: number,
  numNeedleQ: number,
): RulerTaskSpec => ({
  family: 'niah',
  args: { typeHaystack, typeNeedleK, typeNeedleV, numNeedleK, numNeedleV, numNeedleQ },
});

/** scripts/synthetic.yaml */
export const RULER_TASKS: Record<string, RulerTaskSpec> = {
  niah_single_1: niah('noise', 'words', 'numbers', 1, 1, 1),
  niah_single_2: niah('essay', 'words', 'numbers', 1, 1, 1),
  niah_single_3: niah('essay', 'words', 'uuids', 1, 1, 1),
  niah_multikey_1: niah('essay', 'words', 'numbers', 4, 1, 1),
  niah_multikey_2: niah('needle', 'words', 'numbers', 1, 1, 1),
  niah_multikey_3: niah('needle', 'uuids', 'uuids', 1, 1, 1),
  niah_multivalue: niah('essay', 'words', 'numbers', 1, 4, 1),
  niah_multiquery: niah('essay', 'words', 'numbers', 1, 1, 4),
  vt: { family: 'variable_tracking', args: { numChains: 1, numHops: 4 } },
  cwe: { family: 'common_words_extraction', args: { freqCw: 30, freqUcw: 3, numCw: 10 } },
  fwe: { family: 'freq_words_extraction', args: { alpha: 2.0 } },
  qa_1: { family: 'qa', args: { dataset: 'squad' } },
  qa_2: { family: 'qa', args: { dataset: 'hotpotqa' } },
};

export const RULER_TASK_NAMES = Object.keys(RULER_TASKS);

export function rulerTask(name: string, where: string): RulerTaskSpec {
  const t = RULER_TASKS[name];
  if (!t) throw new KvevictError(`${where}: unknown RULER task "${name}" (tasks: ${RULER_TASK_NAMES.join(', ')})`);
  return t;
}

/** RULER's scoring: string_match_part for QA, string_match_all for the rest. */
export function rulerMetric(family: RulerFamily): MetricName {
  return family === 'qa' ? 'string_match_part' : 'string_match_all';
}

/** Python str.format for the named fields a template uses. */
export function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (m, key: string) => (key in values ? String(values[key]) : m));
}
