/**
 * Work that several presses scoring one unchanged prompt cache can share. An eval grid runs many methods and
 * budgets over one prefill; what does not depend on the budget (KVzip's reconstruction, the output-projected
 * value norms, DefensiveKV's worst-case attention) is then computed once. Whoever attaches it to a PrefillRun
 * promises that the cache does not change while it is attached. Results are shared, not copied: a reader that
 * modifies one copies it first.
 */
export class SharedWork {
  private readonly done = new Map<string, unknown>();

  get<T>(key: string, make: () => T): T {
    if (!this.done.has(key)) this.done.set(key, make());
    return this.done.get(key) as T;
  }
}

/** `make()`, or its shared result when the run carries shared work. */
export function sharedResult<T>(run: { shared?: SharedWork }, key: string, make: () => T): T {
  return run.shared ? run.shared.get(key, make) : make();
}
