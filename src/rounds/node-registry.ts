/**
 * What the coordinator knows of each trainer: advertised and observed capacity, liveness, and
 * its record of finishing on time (reliability, a Beta(1, 1)-smoothed ratio so a new node starts
 * at 0.5 plus evidence).
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
  /** Ed25519 key that signs its secure-aggregation keys (empty if it sent none). */
  identityKey: Buffer;
}

/** Registry of trainers. */
export class NodeRegistry {
  private readonly nodes = new Map<string, TrainerRecord>();

  constructor(private readonly liveTimeoutMs: number, private readonly now: () => number = Date.now) {}

  /** Adds or refreshes a trainer; a returning trainer keeps its record. */
  register(nodeId: string, advertised: number, backend: string, device: string, identityKey: Buffer = Buffer.alloc(0)): TrainerRecord {
    const prev = this.nodes.get(nodeId);
    const rec: TrainerRecord = prev ?? {
      nodeId, capacity: advertised, reliability: 0.5, backend, device, lastSeenMs: 0,
      assigned: 0, onTime: 0, observed: 0, advertised, identityKey,
    };
    rec.identityKey = identityKey;
    rec.advertised = advertised;
    rec.backend = backend;
    rec.device = device;
    rec.capacity = rec.observed > 0 ? rec.observed : advertised;
    rec.lastSeenMs = this.now();
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
    rec.lastSeenMs = this.now();
    return true;
  }

  isLive(nodeId: string): boolean {
    const rec = this.nodes.get(nodeId);
    return rec !== undefined && this.now() - rec.lastSeenMs <= this.liveTimeoutMs;
  }

  /** Trainers seen within the live timeout. */
  live(): TrainerRecord[] {
    return [...this.nodes.values()].filter((r) => this.now() - r.lastSeenMs <= this.liveTimeoutMs);
  }

  /** Records the end of a task: on time or not, and the throughput it showed. */
  recordTask(nodeId: string, onTime: boolean, samplesPerSecond?: number): void {
    const rec = this.nodes.get(nodeId);
    if (!rec) return;
    rec.assigned++;
    if (onTime) rec.onTime++;
    rec.reliability = (rec.onTime + 1) / (rec.assigned + 2);
    if (samplesPerSecond !== undefined && Number.isFinite(samplesPerSecond) && samplesPerSecond > 0) {
      rec.observed = rec.observed > 0 ? 0.5 * rec.observed + 0.5 * samplesPerSecond : samplesPerSecond;
      rec.capacity = rec.observed;
    }
  }
}
