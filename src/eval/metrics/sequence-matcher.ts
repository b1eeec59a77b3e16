import { codePoints, pyRound } from './python-text.js';

/**
 * Python's difflib.SequenceMatcher(None, a, b) on strings (code points), autojunk on: when b has 200 or
 * more elements, elements occurring more than len(b)/100 + 1 times are "popular" and cannot start a
 * match (they may still extend one). Only what `ratio()` needs.
 */
export class SequenceMatcher {
  private readonly a: string[];
  private readonly b: string[];
  private readonly b2j = new Map<string, number[]>();

  constructor(a: string, b: string) {
    this.a = codePoints(a);
    this.b = codePoints(b);
    this.b.forEach((ch, j) => {
      const list = this.b2j.get(ch);
      if (list) list.push(j);
      else this.b2j.set(ch, [j]);
    });
    const n = this.b.length;
    if (n >= 200) {
      const ntest = Math.floor(n / 100) + 1;
      for (const [ch, idxs] of [...this.b2j]) if (idxs.length > ntest) this.b2j.delete(ch);
    }
  }

  /** find_longest_match(alo, ahi, blo, bhi) -> [i, j, size] */
  findLongestMatch(alo: number, ahi: number, blo: number, bhi: number): [number, number, number] {
    const { a, b } = this;
    let besti = alo;
    let bestj = blo;
    let bestsize = 0;
    let j2len = new Map<number, number>();
    for (let i = alo; i < ahi; i++) {
      const next = new Map<number, number>();
      const js = this.b2j.get(a[i]);
      if (js) {
        for (const j of js) {
          if (j < blo) continue;
          if (j >= bhi) break;
          const k = (j2len.get(j - 1) ?? 0) + 1;
          next.set(j, k);
          if (k > bestsize) {
            besti = i - k + 1;
            bestj = j - k + 1;
            bestsize = k;
          }
        }
      }
      j2len = next;
    }
    // extend with equal elements on both ends (no isjunk, so nothing is "junk" here)
    while (besti > alo && bestj > blo && a[besti - 1] === b[bestj - 1]) {
      besti--;
      bestj--;
      bestsize++;
    }
    while (besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] === b[bestj + bestsize]) bestsize++;
    return [besti, bestj, bestsize];
  }

  /** Total size of the matching blocks. */
  matches(): number {
    const queue: [number, number, number, number][] = [[0, this.a.length, 0, this.b.length]];
    let total = 0;
    while (queue.length > 0) {
      const [alo, ahi, blo, bhi] = queue.pop()!;
      const [i, j, k] = this.findLongestMatch(alo, ahi, blo, bhi);
      if (k > 0) {
        total += k;
        if (alo < i && blo < j) queue.push([alo, i, blo, j]);
        if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
      }
    }
    return total;
  }

  ratio(): number {
    const len = this.a.length + this.b.length;
    return len === 0 ? 1 : (2 * this.matches()) / len;
  }
}

/** fuzzywuzzy `fuzz.ratio(s1, s2)` (pure-Python backend): 0..100 integer. */
export function fuzzRatio(s1: string, s2: string): number {
  if (s1 === s2) return 100;
  if (s1.length === 0 || s2.length === 0) return 0;
  return pyRound(100 * new SequenceMatcher(s1, s2).ratio());
}
