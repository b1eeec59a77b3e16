/**
 * An error a user can cause (bad path, malformed file, unsupported option).
 * The CLI prints `message` as one line, without a stack trace, and exits non-zero.
 * The message names the file, tensor or option at fault.
 */
export class KvevictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvevictError';
  }
}

/** Internal invariant: a failure here is a bug in kvevict, not a user mistake. */
export function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`internal error: ${what}`);
}
