import { sinks } from '../common-options.js';
import { defineMethod } from '../method.js';
import { streamingScorer } from '../scorers/streaming.js';

export const streaming = defineMethod({
  name: 'streaming',
  summary: 'StreamingLLM: the first `sinks` positions and the most recent ones',
  options: { sinks },
  scorer: (o) => streamingScorer(o.sinks),
});
