/**
 * The differencing rule of secure aggregation: the coordinator learns only group sums, and two
 * sums whose groups differ by one member would reveal that member's update by subtraction. New
 * groups are drawn so that none differs by exactly one member from another group of the round or
 * from a group evaluated in the job's recent rounds (the same guard protects the group scores,
 * which are functions of the sums).
 */
import type { Random } from '../util/index.js';

/** True when two groups differ by exactly one member (added, removed or swapped). */
export function differByOne(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a), sb = new Set(b);
  let onlyA = 0, onlyB = 0;
  for (const x of sa) if (!sb.has(x)) onlyA++;
  for (const x of sb) if (!sa.has(x)) onlyB++;
  return onlyA + onlyB > 0 && onlyA <= 1 && onlyB <= 1;
}

/** Splits members into random groups of at least `minSize` (sizes differ by at most one). */
export function formGroups(members: readonly string[], minSize: number, rng: Random): string[][] {
  const count = Math.floor(members.length / minSize);
  if (count === 0) return [];
  const shuffled = rng.shuffle([...members]);
  const groups: string[][] = Array.from({ length: count }, () => []);
  shuffled.forEach((m, i) => groups[i % count]!.push(m));
  return groups.map((g) => g.sort());
}

/**
 * The groups a job has evaluated in its recent rounds, and the drawing of new ones that never
 * differ by exactly one member from any of them or from each other: two such groups' sums (or
 * scores) would reveal one member's update by subtraction (a differencing attack).
 *
 * The memory is `windowRounds` rounds long. Within a round the guard is exact. Across rounds, two
 * sums are of updates to different global models: their difference is one member's update
 * minus another's plus every shared member's change between the rounds, which is as large as an
 * update, so it reveals no single update. A memory without end would also make the guard
 * unsatisfiable: a cohort of 20 in groups of 5 runs out of partitions that avoid every earlier
 * group after about 40 rounds.
 */
export class GroupHistory {
  private readonly rounds: string[][][] = [];

  constructor(readonly windowRounds = 16) {}

  /** Records the groups one round evaluated (after dropouts: the members whose sum was seen). */
  add(groups: readonly (readonly string[])[]): void {
    this.rounds.push(groups.map((g) => [...g].sort()));
    if (this.rounds.length > this.windowRounds) this.rounds.splice(0, this.rounds.length - this.windowRounds);
  }

  /** True when `group` differs by one member from a remembered group. */
  clashes(group: readonly string[]): boolean {
    return this.rounds.some((r) => r.some((e) => differByOne(group, e)));
  }

  /**
   * Random groups of at least `minSize` that clash with nothing remembered nor each other
   * (re-drawn up to `tries` times). When none are found, larger groups are tried (fewer groups,
   * so fewer sums to difference); [] when not even the whole cohort as one group can be used.
   */
  draw(members: readonly string[], minSize: number, rng: Random, tries = 200): string[][] {
    for (let size = minSize; size <= members.length; size++) {
      for (let i = 0; i < tries; i++) {
        const groups = formGroups(members, size, rng);
        const clash = groups.some((g, gi) => this.clashes(g) || groups.some((h, hi) => hi !== gi && differByOne(g, h)));
        if (!clash) return groups;
        if (groups.length === 1) break;
      }
    }
    return [];
  }

  /**
   * The relaxed rule, for cohorts that leave {@link draw} nothing (five or six trainers, one of
   * whom dropped out of a recent group): groups that differ by one member from none of each
   * other (exact within the round, as always), whatever the memory holds. Across rounds two
   * sums are of updates to different models and reveal no single update; what the memory also
   * guards are the group scores, so a sum that clashes with a remembered group is aggregated
   * but not scored ({@link clashes}, checked by the round before it records its sums).
   */
  drawWithinRound(members: readonly string[], minSize: number, rng: Random, tries = 200): string[][] {
    for (let size = minSize; size <= members.length; size++) {
      for (let i = 0; i < tries; i++) {
        const groups = formGroups(members, size, rng);
        if (!groups.some((g, gi) => groups.some((h, hi) => hi !== gi && differByOne(g, h)))) return groups;
        if (groups.length === 1) break;
      }
    }
    return [];
  }
}
