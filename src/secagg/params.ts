/**
 * The SecAgg+ parameters of a round's groups (Bell et al. 2020): the cohort is split into random
 * groups that respect the differencing rule (`group-history.ts`), and each group gets its
 * neighbour count k (about 2 log2 n unless set), its threshold t (a majority of the neighbours
 * unless set), the quantization bits that keep its sum from wrapping, the largest sample weight
 * a member may claim, and a fresh public seed for its neighbour graph.
 */
import { randomBytes } from 'node:crypto';
import { defaultNeighbours, defaultThreshold, type SecAggParams } from './constants.js';
import { quantBitsFor } from './quantize.js';
import type { GroupHistory } from './group-history.js';
import type { Random } from '../util/index.js';

/** A job's secure-aggregation settings that shape its groups. */
export interface GroupSettings {
  minGroupSize: number;
  /** 0: the default for each group's size. */
  neighbours: number;
  /** 0: the default for each group's neighbours. */
  threshold: number;
  clipRange: number;
}

/** What {@link planGroups} needs besides the cohort. */
export interface PlanGroupsOptions {
  /** `<job>/<round>/<attempt>`: bound into every signature of the groups. */
  roundId: string;
  /** Coordinates of a masked input: the model's parameters plus the weight. */
  vectorLength: number;
  settings: GroupSettings;
  /** Groups evaluated in recent rounds; new groups never differ from them by one member. */
  history: GroupHistory;
  rng: Random;
}

/**
 * Groups of the cohort (each member with the samples it was dealt) and their parameters; [] when
 * no grouping avoids a group differing by one member from a recent one.
 */
export function planGroups(cohort: readonly { nodeId: string; samples: number }[], options: PlanGroupsOptions): SecAggParams[] {
  const { settings } = options;
  const samples = new Map(cohort.map((m) => [m.nodeId, m.samples]));
  const ids = cohort.map((m) => m.nodeId);
  const strict = options.history.draw(ids, settings.minGroupSize, options.rng);
  const groups = strict.length ? strict : options.history.drawWithinRound(ids, settings.minGroupSize, options.rng);
  return groups.map((ids, i) => {
    const n = ids.length;
    const k = settings.neighbours > 0 ? Math.min(settings.neighbours, n - 1) : defaultNeighbours(n);
    return {
      roundId: options.roundId,
      groupId: `g${i}`,
      members: ids,
      neighbours: k,
      threshold: settings.threshold > 0 ? Math.min(settings.threshold, k) : defaultThreshold(k),
      clipRange: settings.clipRange,
      quantBits: quantBitsFor(n),
      vectorLength: options.vectorLength,
      maxWeight: Math.max(1, ...ids.map((id) => samples.get(id) ?? 0)),
      seed: randomBytes(32),
    };
  });
}
