/** One generated RULER sample, laid out as a case's user turn. */
export interface RulerSample {
  before: string;
  context: string;
  after: string;
  question: string;
  answers: string[];
  answerPrefix: string;
}

/** The full text RULER would count: input plus answer prefix. */
export function sampleText(s: RulerSample): string {
  return s.before + s.context + s.after + s.answerPrefix;
}

/** Split a RULER template at {context}. */
export function splitTemplate(template: string): [string, string] {
  const i = template.indexOf('{context}');
  if (i < 0) throw new Error('internal error: template without {context}');
  return [template.slice(0, i), template.slice(i + '{context}'.length)];
}
