/**
 * The neighbour graph of a group: a random k-regular graph seeded by the round's public seed
 * (Bell et al. 2020, "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead"). Members
 * are placed on a ring in a seeded random order and each is joined to the k/2 nearest on either
 * side (a circulant graph on a random permutation): k-regular, connected, and unpredictable before
 * the seed is drawn. With k >= n - 1 it is the complete graph, i.e. plain SecAgg.
 */
import { Random } from '../util/index.js';

/** Neighbours of every member (symmetric; nobody is their own neighbour). */
export function neighbourGraph(members: readonly string[], k: number, seed: Uint8Array): Map<string, Set<string>> {
  const n = members.length;
  const out = new Map<string, Set<string>>(members.map((m) => [m, new Set<string>()]));
  if (n < 2) return out;
  if (k >= n - 1) {
    for (const a of members) for (const b of members) if (a !== b) out.get(a)!.add(b);
    return out;
  }
  if (k < 2 || k % 2 !== 0) throw new RangeError(`neighbours: expected an even k >= 2 (or k >= n - 1), got ${k}`);
  const ring = new Random(Buffer.from(seed).toString('hex')).shuffle([...members].sort());
  for (let i = 0; i < n; i++) {
    for (let d = 1; d <= k / 2; d++) {
      const a = ring[i]!, b = ring[(i + d) % n]!;
      out.get(a)!.add(b);
      out.get(b)!.add(a);
    }
  }
  return out;
}
