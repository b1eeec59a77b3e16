/**
 * Float32 buffers reused from one training step to the next. A step allocates hundreds of megabytes of
 * activations and gradients; fresh allocations of that size come from new mappings, and their first touch
 * costs a page fault per 4 KB, which measured as a large share of a step. Inside a scope
 * (`beginBufferScope` .. `endBufferScope`, one training step) every `buffer()` is recorded and handed back
 * at the end, so the next step reuses the same memory. Sizes are rounded up to classes (2^k times 1, 1.25,
 * 1.5 or 1.75) so that steps whose sequence lengths differ still reuse each other's buffers.
 */
const free = new Map<number, Float32Array[]>();
let scope: Float32Array[] | null = null;

function sizeClass(n: number): number {
  if (n <= 1024) return 1024;
  const p = 2 ** Math.floor(Math.log2(n));
  for (const f of [1, 1.25, 1.5, 1.75, 2]) if (p * f >= n) return p * f;
  return 2 * p;
}

/** A zeroed Float32Array of length n; from the pool when one is free. */
export function buffer(n: number): Float32Array {
  const cls = sizeClass(n);
  const base = free.get(cls)?.pop();
  let out: Float32Array;
  if (base) {
    out = base.subarray(0, n);
    out.fill(0);
  } else {
    out = new Float32Array(cls).subarray(0, n);
  }
  if (scope) scope.push(out);
  return out;
}

/** Start recording: buffers taken until `endBufferScope` return to the pool then. */
export function beginBufferScope(): void {
  if (scope) throw new Error('internal error: buffer scopes do not nest');
  scope = [];
}

/** Hand back every buffer of the scope; nothing allocated in it may be read afterwards. */
export function endBufferScope(): void {
  if (!scope) return;
  for (const b of scope) {
    const whole = new Float32Array(b.buffer, b.byteOffset, sizeClass(b.length));
    const list = free.get(whole.length);
    if (list) list.push(whole);
    else free.set(whole.length, [whole]);
  }
  scope = null;
}

/** Bytes held by the pool (for tests and progress lines). */
export function pooledBytes(): number {
  let n = 0;
  for (const list of free.values()) for (const b of list) n += b.byteLength;
  return n;
}
