import { assert } from '../../errors.js';
import type { CaptureRequest, PrefillRun, QueryBlock, QuerySource } from '../types.js';

/** The queries of the last `size` prompt tokens, recorded during the prefill; causal inside the window (SnapKV). */
export class WindowQueries implements QuerySource {
  readonly name = 'window';
  readonly shareKey: string;

  constructor(readonly size: number) {
    assert(Number.isInteger(size) && size >= 1, 'window size >= 1');
    this.shareKey = `window ${size}`;
  }

  capture(): CaptureRequest {
    return { windowQueries: this.size };
  }

  queries(run: PrefillRun): QueryBlock[] {
    const c = run.captured;
    assert(c.windowQueries !== null, 'window queries were recorded');
    const { numHeads: H, headDim: d } = run.model.config;
    const have = c.windowPositions.length;
    const rows = Math.min(this.size, have);
    const skip = have - rows;
    return c.windowQueries.map((q) => ({
      queries: q.subarray(skip * H * d, have * H * d),
      positions: c.windowPositions.subarray(skip),
      causal: true,
    }));
  }
}
