/**
 * What the coordinator knows of each trainer: advertised and observed capacity, liveness, and
 * its operational record:
 * - on time: the share of its tasks whose update arrived before the deadline (a Beta(1, 1)-
 *   smoothed ratio, so a new node starts at 0.5 plus evidence);
 * - uptime: the share of the time since it first registered during which it was live (an outage
 *   runs from the live timeout after its last heartbeat to its next one);
 * - throughput: its observed samples a second against the median of the trainers observed.
 *
 * A trainer that stays live through a deadline and misses it is benched: left out of cohorts for 30 s, doubling with each
 * miss in a row up to an hour, and its claimed capacity halves with each (until it shows one
 * by finishing a task); an update on time ends both. Ten silent trainers among five honest ones
 * are out of the cohorts after one round each (test/failure.test.ts).
 */
import type { Candidate } from './selection.js';

/** One trainer as the coordinator sees it. */
export interface TrainerRecord extends Candidate {
  backend: string;
  device: string;
  lastSeenMs: number;
  /** Tasks given, and tasks whose update arrived before the deadline. */
  assigned: number;
  onTime: number;
  /** Observed samples a second (EMA), 0 until the first update. */
  observed: number;
  advertised: number;
  /** First registration, and time spent not live since (closed outages only). */
  firstSeenMs: number;
  downMs: number;
  /** Ed25519 key that signs its secure-aggregation keys (empty if it sent none). */
  identityKey: Buffer;
  /** Deadlines missed in a row, and until when it is left out of cohorts for them. */
  missedInRow?: number;
  benchedUntilMs?: number;
}

/** The first bench of a trainer that missed a deadline, and the longest. */
export const BENCH_BASE_MS = 30_000;
export const BENCH_MAX_MS = 3_600_000;

/** Registry of trainers. */
export class NodeRegistry {
  private readonly nodes = new Map<string, TrainerRecord>();

  constructor(private readonly liveTimeoutMs: number, private readonly now: () => number = Date.now) {}

  /** Adds or refreshes a trainer; a returning trainer keeps its record. */
  register(nodeId: string, advertised: number, backend: string, device: string, identityKey: Buffer = Buffer.alloc(0)): TrainerRecord {
    const prev = this.nodes.get(nodeId);
    const rec: TrainerRecord = prev ?? {
      nodeId, capacity: advertised, reliability: 0.5, backend, device, lastSeenMs: 0,
      assigned: 0, onTime: 0, observed: 0, advertised, identityKey, firstSeenMs: this.now(), downMs: 0,
    };
    this.seen(rec);
    rec.identityKey = identityKey;
    rec.advertised = advertised;
    rec.backend = backend;
    rec.device = device;
    rec.capacity = rec.observed > 0 ? rec.observed : advertised / 2 ** (rec.missedInRow ?? 0);
    this.nodes.set(nodeId, rec);
    return rec;
  }

  get(nodeId: string): TrainerRecord | undefined {
    return this.nodes.get(nodeId);
  }

  /** Marks the trainer as seen now; false when it is unknown. */
  touch(nodeId: string): boolean {
    const rec = this.nodes.get(nodeId);
    if (!rec) return false;
    this.seen(rec);
    return true;
  }

  /** Marks a heartbeat, closing the outage it ends (if any). */
  private seen(rec: TrainerRecord): void {
    const now = this.now();
    if (rec.lastSeenMs > 0) rec.downMs += Math.max(0, now - rec.lastSeenMs - this.liveTimeoutMs);
    rec.lastSeenMs = now;
  }

  /** Share of the time since first registration the trainer was live, in [0, 1]. */
  uptime(nodeId: string): number {
    const rec = this.nodes.get(nodeId);
    if (!rec) return 0;
    const now = this.now();
    const open = Math.max(0, now - rec.lastSeenMs - this.liveTimeoutMs);
    const span = now - rec.firstSeenMs;
    return span > 0 ? Math.min(1, Math.max(0, 1 - (rec.downMs + open) / span)) : 1;
  }

  /**
   * Observed samples a second against the median of the trainers observed, capped at 1 (1
   * before anyone has been observed; 0 for a trainer never observed once others have).
   */
  relativeThroughput(nodeId: string): number {
    const observed = [...this.nodes.values()].map((r) => r.observed).filter((x) => x > 0).sort((a, b) => a - b);
    if (observed.length === 0) return 1;
    const median = observed[observed.length >> 1]!;
    return Math.min(1, (this.nodes.get(nodeId)?.observed ?? 0) / median);
  }

  isLive(nodeId: string): boolean {
    const rec = this.nodes.get(nodeId);
    return rec !== undefined && this.now() - rec.lastSeenMs <= this.liveTimeoutMs;
  }

  /** Whether the trainer is benched now for missed deadlines. */
  benched(nodeId: string): boolean {
    return (this.nodes.get(nodeId)?.benchedUntilMs ?? 0) > this.now();
  }

  /** Trainers seen within the live timeout. */
  live(): TrainerRecord[] {
    return [...this.nodes.values()].filter((r) => this.now() - r.lastSeenMs <= this.liveTimeoutMs);
  }

  /** How many trainers were seen within the live timeout (counted without a list). */
  liveCount(): number {
    const since = this.now() - this.liveTimeoutMs;
    let n = 0;
    for (const r of this.nodes.values()) if (r.lastSeenMs >= since) n++;
    return n;
  }

  /** Every trainer's record (to be saved; identity keys as hex). */
  snapshot(): (Omit<TrainerRecord, 'identityKey'> & { identityKey: string })[] {
    return [...this.nodes.values()].map((r) => ({ ...r, identityKey: r.identityKey.toString('hex') }));
  }

  /**
   * Brings back saved records (after a restart): each trainer keeps its record of tasks,
   * throughput and outages, and counts as not live until it registers again; the time the
   * coordinator itself was down is not held against it.
   */
  restore(records: (Omit<TrainerRecord, 'identityKey'> & { identityKey: string })[]): void {
    for (const r of records) {
      if (this.nodes.has(r.nodeId)) continue;
      this.nodes.set(r.nodeId, { ...r, identityKey: Buffer.from(r.identityKey, 'hex'), lastSeenMs: 0 });
    }
  }

  /**
   * Records the end of a task: on time or not, and the throughput it showed. `silent`: it was
   * live at the deadline and sent nothing (benched); one that went away (a crash, a lost
   * connection) is not benched when it comes back.
   */
  recordTask(nodeId: string, onTime: boolean, samplesPerSecond?: number, silent = true): void {
    const rec = this.nodes.get(nodeId);
    if (!rec) return;
    rec.assigned++;
    if (onTime) rec.onTime++;
    rec.reliability = (rec.onTime + 1) / (rec.assigned + 2);
    if (onTime) {
      rec.missedInRow = 0;
      rec.benchedUntilMs = 0;
    } else if (silent) {
      rec.missedInRow = (rec.missedInRow ?? 0) + 1;
      rec.benchedUntilMs = this.now() + Math.min(BENCH_BASE_MS * 2 ** (rec.missedInRow - 1), BENCH_MAX_MS);
      if (rec.observed === 0) rec.capacity /= 2;
    }
    if (samplesPerSecond !== undefined && Number.isFinite(samplesPerSecond) && samplesPerSecond > 0) {
      rec.observed = rec.observed > 0 ? 0.5 * rec.observed + 0.5 * samplesPerSecond : samplesPerSecond;
      rec.capacity = rec.observed;
    }
  }
}

/** A dataset node as the coordinator knows it. */
export interface DatasetRecord {
  nodeId: string;
  address: string;
  task: string;
  shards: { shardId: string; numSamples: number; sha256: string }[];
  lastSeenMs: number;
}
