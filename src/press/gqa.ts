/** How one score per KV head is made from the scores of its group of query heads. */
export type GqaReduce = 'mean' | 'max';

/** Reduce per-query-head scores (equal lengths) to one array: their mean or their element-wise max. */
export function reduceHeads(perHead: Float64Array[], kind: GqaReduce): Float64Array {
  const n = perHead[0].length;
  const out = new Float64Array(n);
  if (kind === 'max') {
    out.fill(-Infinity);
    for (const a of perHead) for (let j = 0; j < n; j++) if (a[j] > out[j]) out[j] = a[j];
  } else {
    for (const a of perHead) for (let j = 0; j < n; j++) out[j] += a[j];
    const inv = 1 / perHead.length;
    for (let j = 0; j < n; j++) out[j] *= inv;
  }
  return out;
}
