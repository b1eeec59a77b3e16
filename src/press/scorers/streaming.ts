import type { CaptureRequest, HeadScores, PrefillRun, Scorer } from '../types.js';

/** StreamingLLM: the first `sinks` positions (attention sinks) score highest, then the most recent ones. */
export class StreamingScorer implements Scorer {
  readonly name = 'streaming';
  readonly window = 0;

  constructor(readonly sinks: number) {}

  capture(): CaptureRequest {
    return {};
  }

  score(run: PrefillRun): HeadScores {
    return run.cache.layers.map((layer) =>
      layer.map((head) => {
        const s = new Float64Array(head.length);
        for (let j = 0; j < head.length; j++) s[j] = j < this.sinks ? Infinity : j;
        return s;
      }),
    );
  }
}
