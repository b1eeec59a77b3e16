import { sinks } from '../common-options.js';
import { defineMethod } from '../method.js';
import { StreamingScorer } from '../scorers/streaming.js';

export const streaming = defineMethod({
  name: 'streaming',
  summary: 'StreamingLLM: the first `sinks` positions and the most recent ones',
  options: { sinks },
  scorer: (o) => new StreamingScorer(o.sinks),
});
