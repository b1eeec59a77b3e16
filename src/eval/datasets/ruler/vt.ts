import type { Rng } from '../../../util/rng.js';
import { NOISE } from './niah.js';
import { UPPER, choices, randint, sample } from './random.js';
import { splitTemplate, type RulerSample } from './sample.js';
import { RULER_FAMILIES, fill } from './tasks.js';

/** generate_chains: chains of "VAR X = value", "VAR Y = VAR X ", ... with distinct variable names. */
function chains(rng: Rng, numChains: number, numHops: number, icl: boolean): { vars: string[][]; chains: string[][] } {
  const k = icl ? 3 : 5;
  const hops = icl ? Math.min(10, numHops) : numHops;
  const names = new Set<string>();
  while (names.size < (hops + 1) * numChains) names.add(choices(rng, UPPER, k));
  const all = [...names];
  const vars: string[][] = [];
  const out: string[][] = [];
  for (let c = 0; c < numChains; c++) {
    const v = all.slice(c * (hops + 1), (c + 1) * (hops + 1));
    vars.push(v);
    const chain = [`VAR ${v[0]} = ${icl ? '12345' : String(randint(rng, 10000, 99998))}`];
    for (let j = 0; j < hops; j++) chain.push(`VAR ${v[j + 1]} = VAR ${v[j]} `);
    out.push(chain);
  }
  return { vars, chains: out };
}

/**
 * One variable-tracking sample of RULER (scripts/data/synthetic/variable_tracking.py) over `n` noise
 * sentences, with the chains inserted at random lines. `prefix` is the randomized in-context example.
 */
export function vtSample(rng: Rng, n: number, numChains: number, numHops: number, icl: boolean, prefix: string): RulerSample {
  const { vars, chains: cs } = chains(rng, numChains, numHops, icl);
  const value = cs[0][0].split('=').pop()!.trim();
  const sentences: string[] = Array.from({ length: n }, () => NOISE);
  for (const chain of cs) {
    // RULER draws distinct lines; with fewer lines than links (tiny contexts) lines are drawn with replacement
    const positions =
      sentences.length >= chain.length
        ? sample(
            rng,
            Array.from({ length: sentences.length }, (_, i) => i),
            chain.length,
          )
        : Array.from({ length: chain.length }, () => rng.int(sentences.length + 1));
    positions.sort((a, b) => a - b);
    positions.forEach((p, j) => sentences.splice(p + j, 0, chain[j]));
  }
  const context = sentences.join('\n').replaceAll('. \n', '.\n');
  const fam = RULER_FAMILIES.variable_tracking;
  const hops = icl ? Math.min(10, numHops) : numHops;
  const values = { query: value, num_v: hops + 1 };
  const [pre, post] = splitTemplate(fam.template);
  const after = fill(post, values);
  return {
    before: prefix + fill(pre, values),
    context,
    after,
    question: after.trim(),
    answers: vars[0],
    answerPrefix: fill(fam.answerPrefix, values),
  };
}

/** The in-context example as RULER writes it: its whole input, a space, the answer, a newline. */
export function vtIclText(s: RulerSample): string {
  return `${s.before}${s.context}${s.after}${s.answerPrefix} ${s.answers.join(' ')}\n`;
}

/** randomize_icl: new letters for the example's variable names, a new value for 12345. */
export function randomizeIcl(rng: Rng, icl: string, numHops: number): string {
  const words = icl.trim().split(/\s+/);
  let out = icl;
  for (const item of words.slice(-numHops - 1)) out = out.replaceAll(item, choices(rng, UPPER, item.length));
  return out.replaceAll('12345', String(randint(rng, 10000, 99998)));
}
