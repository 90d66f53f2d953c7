/**
 * Cohort selection and shard assignment.
 *
 * Selection is weighted sampling without replacement (Efraimidis and Spirakis 2006, "Weighted
 * random sampling with a reservoir"): each candidate draws key u^(1/w) and the largest keys win,
 * with weight w = capacity x reliability, so fast, dependable trainers are picked more often and
 * everyone keeps a chance.
 *
 * Shards are dealt in proportion to capacity (largest remainder, at least one each), so a
 * trainer twice as fast gets twice the data and all finish near the same time: slow nodes do
 * not set the round's pace.
 */
import type { Random } from '../util/index.js';

/** A trainer eligible for a round. */
export interface Candidate {
  nodeId: string;
  /** Samples a second it trains. */
  capacity: number;
  /** Probability it finishes on time, in (0, 1]. */
  reliability: number;
}

/** Picks up to `size` candidates, weighted by capacity x reliability. */
export function selectCohort<C extends Candidate>(candidates: readonly C[], size: number, rng: Random): C[] {
  const keyed = candidates.map((c) => {
    const w = Math.max(c.capacity, 1e-6) * Math.max(c.reliability, 1e-3);
    return { c, key: Math.log(Math.max(rng.next(), 1e-300)) / w };
  });
  keyed.sort((a, b) => b.key - a.key);
  return keyed.slice(0, Math.max(0, size)).map((k) => k.c);
}

/**
 * Splits `total` items among members in proportion to `weights` (largest remainder), giving each
 * at least `min` when there are enough items.
 */
export function proportionalCounts(weights: readonly number[], total: number, min = 1): number[] {
  const n = weights.length;
  if (n === 0) return [];
  const sum = weights.reduce((s, w) => s + Math.max(w, 0), 0);
  const exact = weights.map((w) => (sum > 0 ? (Math.max(w, 0) / sum) * total : total / n));
  const counts = exact.map((e) => Math.floor(e));
  let left = total - counts.reduce((s, c) => s + c, 0);
  const byRemainder = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r);
  for (let k = 0; left > 0; k = (k + 1) % n, left--) counts[byRemainder[k]!.i]!++;
  if (total >= min * n) {
    // Lift anyone under the minimum, taking from whoever has most.
    for (let i = 0; i < n; i++) {
      while (counts[i]! < min) {
        const richest = counts.indexOf(Math.max(...counts));
        counts[richest]!--;
        counts[i]!++;
      }
    }
  }
  return counts;
}

/** Deals `items` (shuffled) to members in proportion to their capacity. */
export function assignShards<S>(members: readonly Candidate[], items: readonly S[], rng: Random): S[][] {
  const pool = rng.shuffle([...items]);
  const counts = proportionalCounts(members.map((m) => m.capacity), pool.length);
  const out: S[][] = [];
  let off = 0;
  for (const c of counts) {
    out.push(pool.slice(off, off + c));
    off += c;
  }
  return out;
}
