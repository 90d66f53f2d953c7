/**
 * Every node's score, from what the coordinator may see: per round, the scores of groups (or,
 * without secure aggregation, of single updates), the shards that fed them, and each node's
 * record. Quality comes from {@link ContributionEstimator} over group memberships (trainers,
 * and dataset nodes by their share of a group's samples); it is squashed to (0, 1) and
 * multiplied by the node's operational record, then smoothed with an EMA across rounds:
 *
 *   score = EMA( squash(quality) x onTime x uptime x (3/4 + throughput/4) )
 *
 * Trainers: tasks in on time, time live, and samples a second against the median (a slow
 * trainer holds rounds to their deadline, but speed alone must not outweigh quality, hence the
 * quarter). Dataset nodes: rounds available for `uptime`, the share of their shards that
 * verified (none reported failing by two trainers) for `onTime`; `throughput` is 1. Weights follow the SDK's rules (weights.ts).
 */
import { ContributionEstimator } from './contribution.js';
import { Ema, toU16Weights, type WeightRules } from './weights.js';

/** One node's score and its parts (what the feedback RPC returns). */
export interface NodeScore {
  nodeId: string;
  role: 'trainer' | 'dataset';
  score: number;
  quality: number;
  /** onTime x uptime x (3/4 + throughput/4): the factor the operational record applies. */
  reliability: number;
  onTime: number;
  uptime: number;
  throughput: number;
  groupsSeen: number;
}

/** A node's operational record, each part in [0, 1]. */
export interface Operational {
  onTime: number;
  uptime: number;
  throughput: number;
}

/** An evaluated group of one round. */
export interface ScoredGroup {
  round: string;
  /** Trainer ids and their sample counts. */
  members: { id: string; samples: number }[];
  /** Dataset node ids and the samples of theirs the group trained on. */
  datasets: { id: string; samples: number }[];
  score: number;
  /** The round's scale (first-order.ts), the same for all its groups. */
  scale?: number;
  /** Task difficulty weight of the job (harder jobs weigh more). */
  weight?: number;
  /** The group's mean update applied alone to the global model, evaluated (secure groups). */
  evaluated?: GroupEvaluation;
  /**
   * True for a sum whose members differ by one from a group of a recent round (the relaxed
   * differencing rule, src/secagg/group-history.ts): aggregated, recorded, never scored.
   */
  unscored?: boolean;
}

/**
 * Validation loss and task metric of the global model plus one group's mean update, minus those
 * of the global model: what the group alone would have done. Recorded beside the first-order
 * score (which the estimator uses, being additive over members) for reports and audits.
 */
export interface GroupEvaluation {
  lossChange: number;
  metricChange: number;
}

const squash = (x: number) => 1 / (1 + Math.exp(-x));

/** The coordinator's scoreboard. */
export class Scoreboard {
  private readonly trainers = new ContributionEstimator();
  private readonly datasets = new ContributionEstimator();
  private readonly ema = new Ema(0.3);
  private latest = new Map<string, NodeScore>();

  /** Adds an evaluated group. */
  observe(g: ScoredGroup): void {
    if (g.unscored) return;
    this.trainers.observe({ members: g.members.map((m) => ({ id: m.id, share: m.samples })), score: g.score, scale: g.scale, round: g.round, weight: g.weight });
    if (g.datasets.length > 0) {
      this.datasets.observe({ members: g.datasets.map((d) => ({ id: d.id, share: d.samples })), score: g.score, scale: g.scale, round: g.round, weight: g.weight });
    }
  }

  /** Recomputes every score (once a round); `operational` gives each node's record. */
  update(operational: (id: string, role: 'trainer' | 'dataset') => Operational): NodeScore[] {
    const out: NodeScore[] = [];
    for (const [role, est] of [['trainer', this.trainers], ['dataset', this.datasets]] as const) {
      const q = est.estimate();
      const seen = est.appearances();
      for (const [id, quality] of q) {
        const op = operational(id, role);
        const [onTime, uptime, throughput] = [op.onTime, op.uptime, op.throughput].map((x) => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0)) as [number, number, number];
        const reliability = onTime * uptime * (0.75 + 0.25 * throughput);
        const score = this.ema.update(`${role}/${id}`, squash(quality) * reliability);
        out.push({ nodeId: id, role, score, quality, reliability, onTime, uptime, throughput, groupsSeen: seen.get(id) ?? 0 });
      }
    }
    this.latest = new Map(out.map((s) => [s.nodeId, s]));
    return out;
  }

  /** The latest score of a node. */
  get(nodeId: string): NodeScore | undefined {
    return this.latest.get(nodeId);
  }

  /** All latest scores, best first. */
  all(): NodeScore[] {
    return [...this.latest.values()].sort((a, b) => b.score - a.score);
  }

  /** u16 weights for `uids` (node id -> uid on the subnet), under the subnet's rules. */
  weights(uids: ReadonlyMap<string, number>, rules: WeightRules): { uids: number[]; values: number[] } {
    const byUid = new Map<number, number>();
    for (const s of this.latest.values()) {
      const uid = uids.get(s.nodeId);
      if (uid !== undefined) byUid.set(uid, (byUid.get(uid) ?? 0) + s.score);
    }
    return toU16Weights(byUid, rules);
  }
}
