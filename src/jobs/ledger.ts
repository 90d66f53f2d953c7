/**
 * What the coordinator knows about nodes across all its jobs: one scoreboard (each job's scored
 * groups weighted by its task weight, so the weights set on chain reflect every job), the shard
 * faults trainers reported, and how many rounds each dataset node was live for.
 */
import { Scoreboard } from '../scoring/index.js';
import type { DatasetRecord, NodeRegistry } from '../rounds/index.js';

/** Shards remembered as dealt to one trainer. */
const DEALT_KEPT = 10_000;

export class NodeLedger {
  readonly scoreboard = new Scoreboard();
  /** Trainers that reported each dataset node's shard failing its checks (its digest, or its contents). */
  private readonly shardFaults = new Map<string, Map<string, Set<string>>>();
  /**
   * Shards each trainer was dealt under a lease ("dataset/shard"), the most recent
   * {@link DEALT_KEPT} a trainer: only a trainer that was given a shard may report it.
   */
  private readonly dealtTo = new Map<string, Set<string>>();
  /** Rounds each dataset node was live at a round's start, and rounds counted. */
  private readonly datasetLive = new Map<string, number>();
  private roundsCounted = 0;

  constructor(private readonly registry: NodeRegistry, private readonly datasets: () => DatasetRecord[]) {}

  /**
   * A trainer found that a dataset node's shard did not match its listed digest. Counted only
   * from a trainer that was dealt that shard (false: not counted), and a shard counts as failed
   * once two different trainers say so: one trainer alone could slander a node, and trainers it
   * never served cannot at all.
   */
  reportShardFault(datasetNodeId: string, shardId: string, trainerId: string): boolean {
    if (!this.dealtTo.get(trainerId)?.has(`${datasetNodeId}/${shardId}`)) return false;
    this.countFault(datasetNodeId, shardId, trainerId);
    return true;
  }

  /**
   * Whether a shard is not to be dealt to `trainerId`: it reported that shard failing itself, or
   * two trainers did (then it is dealt to none). One trainer's report keeps the shard only from
   * that trainer, so a trainer that slanders shards cannot take them from the others. With
   * `trainerId` null: whether the shard is kept from every trainer.
   */
  shardFailedFor(trainerId: string | null, datasetNodeId: string, shardId: string): boolean {
    const by = this.shardFaults.get(datasetNodeId)?.get(shardId);
    return by !== undefined && (by.size >= 2 || (trainerId !== null && by.has(trainerId)));
  }

  /** A round dealt `shards` of dataset nodes to `trainerId`. */
  dealt(trainerId: string, shards: readonly { datasetNodeId: string; shardId: string }[]): void {
    const set = this.dealtTo.get(trainerId) ?? this.dealtTo.set(trainerId, new Set()).get(trainerId)!;
    for (const s of shards) {
      const key = `${s.datasetNodeId}/${s.shardId}`;
      set.delete(key);
      set.add(key);
    }
    // Oldest first: a Set keeps insertion order.
    for (const k of set) {
      if (set.size <= DEALT_KEPT) break;
      set.delete(k);
    }
  }

  private countFault(datasetNodeId: string, shardId: string, trainerId: string): void {
    const byShard = this.shardFaults.get(datasetNodeId) ?? this.shardFaults.set(datasetNodeId, new Map()).get(datasetNodeId)!;
    (byShard.get(shardId) ?? byShard.set(shardId, new Set()).get(shardId)!).add(trainerId);
  }

  /** Share of a dataset node's shards that did not fail (1 when it lists none or none failed). */
  shardsVerified(datasetNodeId: string): number {
    const total = this.datasets().find((d) => d.nodeId === datasetNodeId)?.shards.length ?? 0;
    const failed = [...(this.shardFaults.get(datasetNodeId)?.values() ?? [])].filter((r) => r.size >= 2).length;
    return total > 0 ? Math.max(0, 1 - failed / total) : 1;
  }

  /** A round of some job starts: counts which dataset nodes are live for it. */
  countRound(): void {
    this.roundsCounted++;
    for (const d of this.datasets()) this.datasetLive.set(d.nodeId, (this.datasetLive.get(d.nodeId) ?? 0) + 1);
  }

  /** What a restart needs of the dataset nodes' record. */
  snapshot(): { roundsCounted: number; datasetLive: [string, number][]; shardFaults: [string, [string, string[]][]][] } {
    return {
      roundsCounted: this.roundsCounted,
      datasetLive: [...this.datasetLive],
      shardFaults: [...this.shardFaults].map(([d, m]) => [d, [...m].map(([s, t]) => [s, [...t]])]),
    };
  }

  restore(s: ReturnType<NodeLedger['snapshot']>): void {
    this.roundsCounted = s.roundsCounted;
    for (const [d, n] of s.datasetLive) this.datasetLive.set(d, n);
    for (const [d, shards] of s.shardFaults) for (const [shard, trainers] of shards) for (const t of trainers) this.countFault(d, shard, t);
  }

  /** Recomputes every node's score from the observations and the nodes' records. */
  updateScores(): void {
    const { registry } = this;
    this.scoreboard.update((id, role) => role === 'trainer'
      ? { onTime: registry.get(id)?.reliability ?? 0.5, uptime: registry.uptime(id), throughput: registry.relativeThroughput(id) }
      : { onTime: this.shardsVerified(id), uptime: Math.min(1, (this.datasetLive.get(id) ?? 0) / Math.max(1, this.roundsCounted)), throughput: 1 });
  }
}
