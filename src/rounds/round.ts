/**
 * One attempt at one round of a job, as a state machine:
 *
 *   TRAIN --(every member reported or dropped, or the deadline)--> AGGREGATE --> DONE
 *                                                             \--> FAILED (too few updates)
 *
 * In TRAIN, each member holds a task; its update is folded into a streaming weighted sum as it
 * arrives (the coordinator keeps one vector, not one per trainer). A member that dies (missed
 * heartbeats) is dropped, so the round ends as soon as every live member has reported instead of
 * waiting for the deadline. Under secure aggregation the groups' stages run beside TRAIN, and
 * unmasking follows it (`collect.ts`).
 */
import { WeightedSum } from '../aggregation/index.js';
import { DuplicateUpdateError, RoundClosedError, TaskNotFoundError, NonFiniteValueError, UpdateLengthError } from '../errors.js';

export type RoundPhase = 'TRAIN' | 'AGGREGATE' | 'DONE' | 'FAILED';

/** What a member was asked to do and what became of it. */
export interface MemberState<T> {
  nodeId: string;
  taskId: string;
  task: T;
  status: 'assigned' | 'reported' | 'dropped';
  numSamples: number;
  trainLoss: number;
  trainSeconds: number;
}

/** How the TRAIN phase ended. */
export interface TrainOutcome {
  reason: 'all-reported' | 'deadline' | 'members-lost';
  reported: number;
  dropped: number;
  missing: number;
}

/** Options of a round. */
export interface RoundOptions<T> {
  jobId: string;
  round: number;
  attempt: number;
  paramCount: number;
  deadlineMs: number;
  members: { nodeId: string; taskId: string; task: T }[];
  now?: () => number;
  /** Sees each accepted plaintext update before it is folded in (to score it). */
  onAccepted?: (nodeId: string, delta: Float32Array, numSamples: number) => void;
}

/** One attempt at a round. */
export class Round<T> {
  readonly jobId: string;
  readonly round: number;
  readonly attempt: number;
  readonly deadlineMs: number;
  readonly startedMs: number;
  readonly aggregate: WeightedSum;
  private readonly byTask = new Map<string, MemberState<T>>();
  private readonly byNode = new Map<string, MemberState<T>>();
  private current: RoundPhase = 'TRAIN';
  private timer: NodeJS.Timeout | null = null;
  private readonly onAccepted?: RoundOptions<T>['onAccepted'];
  private resolveTrain!: (o: TrainOutcome) => void;
  /** Resolves when TRAIN ends. */
  readonly trained: Promise<TrainOutcome>;

  constructor(options: RoundOptions<T>) {
    this.jobId = options.jobId;
    this.round = options.round;
    this.attempt = options.attempt;
    this.deadlineMs = options.deadlineMs;
    this.startedMs = (options.now ?? Date.now)();
    this.aggregate = new WeightedSum(options.paramCount);
    this.onAccepted = options.onAccepted;
    for (const m of options.members) {
      const st: MemberState<T> = { ...m, status: 'assigned', numSamples: 0, trainLoss: 0, trainSeconds: 0 };
      this.byTask.set(m.taskId, st);
      this.byNode.set(m.nodeId, st);
    }
    this.trained = new Promise((resolve) => (this.resolveTrain = resolve));
    this.timer = setTimeout(() => this.endTrain('deadline'), Math.max(0, this.deadlineMs - this.startedMs));
    if (this.byTask.size === 0) this.endTrain('members-lost');
  }

  get phase(): RoundPhase {
    return this.current;
  }

  /** Members in selection order. */
  members(): readonly MemberState<T>[] {
    return [...this.byTask.values()];
  }

  /** The member state of `nodeId`, if it is in this round. */
  member(nodeId: string): MemberState<T> | undefined {
    return this.byNode.get(nodeId);
  }

  /** True while `taskId` still wants an update. */
  isTaskActive(taskId: string): boolean {
    return this.current === 'TRAIN' && this.byTask.get(taskId)?.status === 'assigned';
  }

  /**
   * True while `taskId` is in this round and the round is open: its update still wanted, or in
   * (a secure member still owes its group the survivor-set signature and unmask answers). False
   * once the task was dropped or the round closed.
   */
  isTaskInRound(taskId: string): boolean {
    const status = this.byTask.get(taskId)?.status;
    return this.current === 'TRAIN' && (status === 'assigned' || status === 'reported');
  }

  /**
   * Checks, before any bytes are read, that `nodeId` may upload for `taskId` now. Throws the
   * error the trainer should see.
   */
  checkUpload(taskId: string, nodeId: string, numParams: number): MemberState<T> {
    const m = this.byTask.get(taskId);
    if (!m || m.nodeId !== nodeId) throw new TaskNotFoundError(taskId, nodeId);
    if (this.current !== 'TRAIN') throw new RoundClosedError(this.jobId, this.round, this.current);
    if (m.status === 'reported') throw new DuplicateUpdateError(taskId);
    if (m.status === 'dropped') throw new RoundClosedError(this.jobId, this.round, 'DROPPED (heartbeats missed)');
    if (numParams !== this.aggregate.length) throw new UpdateLengthError(this.aggregate.length, numParams);
    return m;
  }

  /** Folds a received update in. Rejects non-finite values without touching the sum. */
  acceptUpdate(taskId: string, nodeId: string, delta: Float32Array, info: { numSamples: number; trainLoss: number; trainSeconds: number }): void {
    const m = this.checkUpload(taskId, nodeId, delta.length);
    for (let i = 0; i < delta.length; i++) {
      if (!Number.isFinite(delta[i]!)) throw new NonFiniteValueError(i, delta[i]!);
    }
    this.onAccepted?.(nodeId, delta, info.numSamples);
    this.aggregate.add(delta, info.numSamples);
    m.status = 'reported';
    m.numSamples = info.numSamples;
    m.trainLoss = info.trainLoss;
    m.trainSeconds = info.trainSeconds;
    this.maybeEnd();
  }

  /**
   * Marks a member reported without folding anything in: under secure aggregation its masked
   * input went to its group, and the round only learns group sums.
   */
  markReported(taskId: string, nodeId: string, info: { numSamples: number; trainLoss: number; trainSeconds: number }): void {
    const m = this.checkUpload(taskId, nodeId, this.aggregate.length);
    m.status = 'reported';
    m.numSamples = info.numSamples;
    m.trainLoss = info.trainLoss;
    m.trainSeconds = info.trainSeconds;
    this.maybeEnd();
  }

  /** Drops a member that is gone (heartbeats missed); its update will be refused. */
  drop(nodeId: string): void {
    const m = this.byNode.get(nodeId);
    if (!m || m.status !== 'assigned' || this.current !== 'TRAIN') return;
    m.status = 'dropped';
    this.maybeEnd();
  }

  /** Counts by status. */
  counts(): { reported: number; dropped: number; assigned: number } {
    let reported = 0, dropped = 0, assigned = 0;
    for (const m of this.byTask.values()) {
      if (m.status === 'reported') reported++;
      else if (m.status === 'dropped') dropped++;
      else assigned++;
    }
    return { reported, dropped, assigned };
  }

  private maybeEnd(): void {
    const c = this.counts();
    if (c.assigned > 0) return;
    this.endTrain(c.dropped > 0 ? 'members-lost' : 'all-reported');
  }

  private endTrain(reason: TrainOutcome['reason']): void {
    if (this.current !== 'TRAIN') return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.current = 'AGGREGATE';
    const c = this.counts();
    this.resolveTrain({ reason, reported: c.reported, dropped: c.dropped, missing: c.assigned });
  }

  /** Ends TRAIN now (shutdown). */
  cancel(): void {
    this.endTrain('deadline');
  }

  /** Marks the round finished. */
  finish(ok: boolean): void {
    if (this.current === 'TRAIN') this.endTrain('deadline');
    this.current = ok ? 'DONE' : 'FAILED';
  }
}
