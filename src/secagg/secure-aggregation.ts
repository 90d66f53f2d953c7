/**
 * A round's secure aggregation: the cohort split into random groups of at least
 * `minGroupSize`, each running its own SecAgg+ instance (`coordinator.ts`). This file
 * drives the groups through their stages: a stage closes as soon as every remaining member has
 * answered, or at its deadline; members waiting for the next stage's input are woken; a group
 * that falls below its threshold fails alone, and its members are reported so the round stops
 * waiting for them.
 *
 * ADVERTISE_KEYS, SHARE_KEYS and CONSISTENCY have `stageTimeoutMs` each; MASKED_INPUT lasts until
 * the round's TRAIN deadline (`closeInputs`); UNMASK has `unmaskTimeoutMs`.
 */
import { SecAggGroup, type GroupResult, type MaskedInput } from './coordinator.js';
import type { SumStorage } from './group-sum.js';
import type { MaskPool } from './mask-pool.js';
import type { EncryptedShare, KeyAdvertisement, SecAggParams, SurvivorSet, SurvivorSignature, UnmaskRequest, UnmaskShare } from './constants.js';
import { NotAMemberError, StageError } from '../errors.js';
import { Notifier } from '../util/index.js';

/** What a node waits for, and what it gets. */
export type AwaitStage = 'SHARE_KEYS' | 'MASKED_INPUT' | 'CONSISTENCY' | 'UNMASK';
export type AwaitResult =
  | { kind: 'advertisements'; advertisements: KeyAdvertisement[] }
  | { kind: 'shares'; shares: EncryptedShare[] }
  | { kind: 'survivors'; set: SurvivorSet }
  | { kind: 'unmask'; request: UnmaskRequest }
  | { kind: 'aborted'; reason: string };

/** A group that gave no sum, and why. */
export interface FailedGroup {
  groupId: string;
  members: string[];
  reason: string;
}

/** Options of {@link SecureAggregation}. */
export interface SecureAggregationOptions {
  groups: SecAggParams[];
  identities: ReadonlyMap<string, Uint8Array>;
  stageTimeoutMs: number;
  unmaskTimeoutMs: number;
  /** Members that will never send their masked input (their group failed, or they dropped out). */
  onMembersLost?: (nodeIds: string[], reason: string) => void;
  /**
   * A group's stage reached its deadline with members that had not acted (`waitingFor`); the
   * stage closes without them. At CONSISTENCY and UNMASK that is not a loss of their inputs, but a
   * round held for the whole timeout by members that sent their inputs and then went quiet.
   */
  onStageTimeout?: (groupId: string, stage: string, waitingFor: string[]) => void;
  /** Threads that expand masks at unmask; inline when absent. */
  pool?: MaskPool;
  /** Sees each group's running masked sum just before unmasking (audits and tests). */
  onBeforeUnmask?: (groupId: string, maskedSum: Uint32Array) => void;
  /**
   * Where the groups' running sums live: shared memory within the storage's budget, else files
   * (`group-sum.ts`); shared memory when absent.
   */
  storage?: SumStorage;
}

/** The groups of one round attempt. */
export class SecureAggregation {
  readonly groups: SecAggGroup[];
  private readonly byNode = new Map<string, SecAggGroup>();
  private readonly timers = new Map<SecAggGroup, NodeJS.Timeout>();
  private readonly unmaskReady = new Set<SecAggGroup>();
  /** Wakes the round's waiters (which groups settled): a few, whatever group changed. */
  private readonly changed = new Notifier();
  /** Wakes a group's members' long polls: only the group's own changes do, not the other groups'. */
  private readonly groupChanged = new Map<SecAggGroup, Notifier>();
  private readonly lost = new Set<string>();
  private closed = false;
  private readonly releaseSums: () => void;
  /** Whether the groups' running sums are in memory (else in files). */
  readonly sumsInMemory: boolean;

  constructor(private readonly options: SecureAggregationOptions) {
    const length = options.groups[0]?.vectorLength ?? 0;
    const taken = options.storage?.take(options.groups[0]?.roundId ?? 'round', options.groups.map((p) => p.groupId), length);
    this.releaseSums = taken?.release ?? (() => {});
    this.sumsInMemory = taken?.inMemory ?? true;
    this.groups = options.groups.map((p) => new SecAggGroup(p, options.identities, taken?.sums.get(p.groupId)));
    for (const g of this.groups) {
      for (const m of g.params.members) this.byNode.set(m, g);
      this.groupChanged.set(g, new Notifier());
      this.arm(g, options.stageTimeoutMs);
    }
  }

  /** The group of `nodeId`. */
  groupOf(nodeId: string): SecAggGroup {
    const g = this.byNode.get(nodeId);
    if (!g) throw new NotAMemberError(nodeId, '(none)', 'is in no group of this round');
    return g;
  }

  private arm(g: SecAggGroup, ms: number): void {
    clearTimeout(this.timers.get(g));
    const stage = g.stage;
    this.timers.set(g, setTimeout(() => {
      if (g.stage !== stage) return;
      this.options.onStageTimeout?.(g.groupId, stage, g.waitingFor);
      if (stage === 'UNMASK') this.unmaskReady.add(g);
      else g.closeStage();
      this.advance(g);
    }, ms));
  }

  /** Closes whatever stage is complete, re-arms deadlines, reports losses, wakes waiters. */
  private advance(g: SecAggGroup): void {
    for (;;) {
      const before = g.stage;
      if ((before === 'ADVERTISE_KEYS' || before === 'SHARE_KEYS' || before === 'MASKED_INPUT' || before === 'CONSISTENCY') && g.stageComplete) g.closeStage();
      if (g.stage === before) break;
      if (g.stage === 'SHARE_KEYS' || g.stage === 'CONSISTENCY') this.arm(g, this.options.stageTimeoutMs);
      if (g.stage === 'UNMASK') this.arm(g, this.options.unmaskTimeoutMs);
    }
    if (g.stage === 'UNMASK' && g.stageComplete) this.unmaskReady.add(g);
    if (g.stage === 'FAILED' || g.stage === 'DONE' || this.unmaskReady.has(g)) clearTimeout(this.timers.get(g));
    // Members that can no longer send a masked input: the round should not wait for them.
    const stillInputting = g.stage === 'ADVERTISE_KEYS' || g.stage === 'SHARE_KEYS' || g.stage === 'MASKED_INPUT';
    const gone = g.params.members.filter((m) => !this.lost.has(m) && (g.stage === 'FAILED' || (stillInputting && !g.remaining.has(m))));
    if (gone.length > 0) {
      for (const m of gone) this.lost.add(m);
      this.options.onMembersLost?.(gone, g.stage === 'FAILED' ? g.error!.message : `dropped out of group ${g.groupId}`);
    }
    this.groupChanged.get(g)!.notify();
    this.changed.notify();
  }

  /** True while `nodeId` may still begin the protocol (its group takes advertisements, it sent none). */
  canStart(nodeId: string): boolean {
    const g = this.byNode.get(nodeId);
    return g !== undefined && g.stage === 'ADVERTISE_KEYS' && g.remaining.has(nodeId) && !g.hasAdvertised(nodeId);
  }

  submitAdvertisement(nodeId: string, ad: KeyAdvertisement): void {
    const g = this.groupOf(nodeId);
    g.receiveAdvertisement(nodeId, ad);
    this.advance(g);
  }

  submitShares(nodeId: string, shares: EncryptedShare[]): void {
    const g = this.groupOf(nodeId);
    g.receiveShares(nodeId, shares);
    this.advance(g);
  }

  /** Checks that `nodeId` may send its masked input now (before the bytes are read). */
  checkMaskedInput(nodeId: string): void {
    const g = this.groupOf(nodeId);
    if (g.stage !== 'MASKED_INPUT') throw new StageError(`group ${g.groupId}`, g.stage, 'MASKED_INPUT');
    if (!g.remaining.has(nodeId)) throw new NotAMemberError(nodeId, g.groupId, 'dropped out before MASKED_INPUT');
  }

  submitMaskedInput(nodeId: string, y: Uint32Array | MaskedInput): void {
    const g = this.groupOf(nodeId);
    try {
      g.receiveMaskedInput(nodeId, y, this.options.pool);
    } finally {
      // A refused input changes nothing; one folded in part failed the group, whose members the round stops waiting for.
      this.advance(g);
    }
  }

  submitConsistency(nodeId: string, sig: SurvivorSignature): void {
    const g = this.groupOf(nodeId);
    g.receiveConsistency(nodeId, sig);
    this.advance(g);
  }

  submitUnmask(nodeId: string, reveals: UnmaskShare[]): void {
    const g = this.groupOf(nodeId);
    g.receiveUnmask(nodeId, reveals);
    this.advance(g);
  }

  /** A member is gone (lost heartbeats). */
  drop(nodeId: string): void {
    const g = this.byNode.get(nodeId);
    if (!g) return;
    g.drop(nodeId);
    this.advance(g);
  }

  /** The input `nodeId` needs for `stage`, null if not ready yet. */
  inputFor(nodeId: string, stage: AwaitStage): AwaitResult | null {
    const g = this.groupOf(nodeId);
    if (g.stage === 'FAILED') return { kind: 'aborted', reason: g.error!.message };
    if (!g.remaining.has(nodeId)) return { kind: 'aborted', reason: `${nodeId} is no longer in group ${g.groupId}` };
    const order = ['ADVERTISE_KEYS', 'SHARE_KEYS', 'MASKED_INPUT', 'CONSISTENCY', 'UNMASK', 'DONE'];
    const at = order.indexOf(g.stage), want = order.indexOf(stage);
    if (at < want) return null;
    if (at > want) return { kind: 'aborted', reason: `group ${g.groupId} is past ${stage} (at ${g.stage})` };
    if (stage === 'SHARE_KEYS') return { kind: 'advertisements', advertisements: g.advertisementsFor(nodeId) };
    if (stage === 'MASKED_INPUT') return { kind: 'shares', shares: g.sharesFor(nodeId) };
    if (stage === 'CONSISTENCY') return { kind: 'survivors', set: g.survivorSet() };
    return { kind: 'unmask', request: g.unmaskRequest() };
  }

  /**
   * Long poll for {@link inputFor}: null when `ms` passed first. Woken by changes to the member's
   * own group only: at a thousand members, each change waking every long poll (to look again
   * and wait again) held the event loop for hundreds of milliseconds at a time.
   */
  async awaitInput(nodeId: string, stage: AwaitStage, ms: number, signal: AbortSignal): Promise<AwaitResult | null> {
    const deadline = Date.now() + ms;
    const changed = this.groupChanged.get(this.groupOf(nodeId))!;
    for (;;) {
      const r = this.inputFor(nodeId, stage);
      const left = deadline - Date.now();
      if (r || left <= 0 || signal.aborted) return r;
      await changed.wait(left, signal);
    }
  }

  /** TRAIN is over: groups still collecting masked inputs close that stage now. */
  closeInputs(): void {
    for (const g of this.groups) {
      if (g.stage === 'ADVERTISE_KEYS' || g.stage === 'SHARE_KEYS') {
        while (g.stage === 'ADVERTISE_KEYS' || g.stage === 'SHARE_KEYS') g.closeStage();
      }
      if (g.stage === 'MASKED_INPUT') g.closeStage();
      this.advance(g);
    }
  }

  /** True when `g` can be finished now: failed, done, or through collecting unmask shares. */
  private settled(g: SecAggGroup): boolean {
    return g.stage === 'FAILED' || g.stage === 'DONE' || this.unmaskReady.has(g);
  }

  /** Resolves when every group has failed or finished collecting unmask shares. */
  async unmasked(signal?: AbortSignal): Promise<void> {
    while (!this.groups.every((g) => this.settled(g)) && !signal?.aborted) {
      await this.changed.wait(Infinity, signal);
    }
  }

  /**
   * The groups in the order they settle (failed, or ready to unmask), each once, as soon as it
   * does: a group's sum can be unmasked, checked and aggregated while others still collect.
   * Ends when every group was given, or when `signal` aborts.
   */
  async *settledGroups(signal?: AbortSignal): AsyncGenerator<SecAggGroup> {
    const given = new Set<SecAggGroup>();
    while (given.size < this.groups.length && !signal?.aborted) {
      const ready = this.groups.filter((g) => !given.has(g) && this.settled(g));
      if (ready.length === 0) {
        await this.changed.wait(Infinity, signal);
        continue;
      }
      for (const g of ready) {
        given.add(g);
        yield g;
      }
    }
  }

  /** Unmasks `g` if it can be (it must have settled): its sum, or why it gave none. */
  async finishGroup(g: SecAggGroup): Promise<{ result: GroupResult } | { failed: FailedGroup }> {
    if (g.stage === 'UNMASK') {
      await g.folded();
      this.options.onBeforeUnmask?.(g.groupId, g.maskedSum());
      try {
        return { result: await g.finish(this.options.pool) };
      } catch {
        // said below
      }
    }
    // A group that gave no sum lets go of its words now.
    g.release();
    return { failed: { groupId: g.groupId, members: g.params.members, reason: g.error?.message ?? `ended in ${g.stage}` } };
  }

  /** Unmasks every group that can be; failed groups are listed with their reason. */
  async finish(): Promise<{ results: GroupResult[]; failed: FailedGroup[] }> {
    const results: GroupResult[] = [];
    const failed: FailedGroup[] = [];
    for (const g of this.groups) {
      const r = await this.finishGroup(g);
      if ('result' in r) results.push(r.result);
      else failed.push(r.failed);
    }
    this.close();
    return { results, failed };
  }

  /** Stops every timer, wakes every waiter, and lets go of the groups' words (memory, files). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const g of this.groups) g.release();
    this.releaseSums();
    for (const t of this.timers.values()) clearTimeout(t);
    for (const n of this.groupChanged.values()) n.notify();
    this.changed.notify();
  }
}
