/**
 * Phase 2 of a round, collect: the plan's tasks are handed out and updates come in until every
 * member reported or was dropped, or the deadline passed.
 *
 * Plaintext: each update is checked and folded into the round's streaming weighted sum as it
 * arrives, and scored first (the coordinator sees it anyway). Secure: members' masked inputs go
 * to their SecAgg+ groups (`secagg/secure-aggregation.ts`); when TRAIN ends the groups close
 * their inputs, collect unmask shares, and each group that kept its threshold gives its
 * unmasked sum. The coordinator never holds one member's update.
 *
 * A member whose heartbeats stop is dropped (a sweep every 250 ms), so a dead trainer does not
 * hold the round to its deadline; the job's abort ends TRAIN at once. The sweep and the abort
 * listener are released however the phase ends.
 */
import { SecureAggregation, quantErrorBound, weightErrorBound, type FailedGroup, type GroupResult, type MaskPool, type SecAggParams, type SumStorage } from '../secagg/index.js';
import { scoreStep } from '../scoring/index.js';
import type { Task } from '../wire/index.js';
import type { Logger } from '../util/index.js';
import { Round, type TrainOutcome } from './round.js';
import type { NodeRegistry } from './node-registry.js';
import type { RoundPlan } from './plan.js';

/** How often members' heartbeats are checked during a round. */
const SWEEP_MS = 250;

/** A round whose tasks are out. */
export interface OpenRound {
  round: Round<Task>;
  /** The round's SecAgg+ groups (null in plaintext rounds). */
  secure: SecureAggregation | null;
  /** Plaintext rounds: each accepted update's first-order score and squared norm. */
  plainScores: Map<string, { score: number; norm2: number }>;
}

/** What {@link openRound} needs besides the plan. */
export interface OpenOptions {
  jobId: string;
  round: number;
  attempt: number;
  paramCount: number;
  /** Gradient of the validation loss at the global model (plaintext updates are scored with it). */
  grad: Float32Array;
  stageTimeoutMs: number;
  unmaskTimeoutMs: number;
  log: Logger;
  /** Threads that expand masks at unmask (inline when absent). */
  maskPool?: MaskPool;
  /** Where groups' running sums live (shared memory within its budget, else files; shared memory when absent). */
  sumStorage?: SumStorage;
  /** Sees each group's masked sum before unmasking (audits and tests). */
  onBeforeUnmask?: (groupId: string, maskedSum: Uint32Array) => void;
}

/** The round state machine and, secure, the groups of a plan: its tasks may be handed out. */
export function openRound(plan: RoundPlan, o: OpenOptions): OpenRound {
  const plainScores = new Map<string, { score: number; norm2: number }>();
  const round = new Round<Task>({
    jobId: o.jobId, round: o.round, attempt: o.attempt, paramCount: o.paramCount, deadlineMs: plan.deadlineMs, members: plan.members,
    onAccepted: plan.groups ? undefined : (nodeId, delta) => plainScores.set(nodeId, scoreStep(o.grad, delta)),
  });
  const secure = plan.groups && new SecureAggregation({
    groups: plan.groups, identities: plan.identities, stageTimeoutMs: o.stageTimeoutMs, unmaskTimeoutMs: o.unmaskTimeoutMs,
    onBeforeUnmask: o.onBeforeUnmask, pool: o.maskPool, storage: o.sumStorage,
    onStageTimeout: (groupId, stage, waitingFor) => o.log.warn('secure group stage timed out', { round: o.round, groupId, stage, waitingFor }),
    onMembersLost: (ids, reason) => {
      o.log.warn('secure aggregation lost members', { round: o.round, nodeIds: ids, reason });
      for (const id of ids) round.drop(id);
    },
  });
  if (secure && !secure.sumsInMemory) o.log.info('group sums kept in files (past --max-sum-mib)', { round: o.round, groups: secure.groups.length, wordsEach: plan.groups![0]!.vectorLength });
  return { round, secure, plainScores };
}

/** What the collect phase gives. */
export interface Collected {
  outcome: TrainOutcome;
  /** Members whose updates are in the round's sums. */
  reporters: Set<string>;
  /** Secure rounds: each unmasked group's weighted sum. */
  sums: GroupResult[];
  /** Secure rounds: groups dropped, with the reason. */
  failed: FailedGroup[];
}

/** What {@link collectRound} needs besides the open round. */
export interface CollectOptions {
  registry: NodeRegistry;
  /** Local epochs of the tasks (for each trainer's measured throughput). */
  localEpochs: number;
  log: Logger;
  signal: AbortSignal;
  /** Every update weighs 1 (differential privacy), whatever sample count its header reports. */
  unitWeights?: boolean;
  /** The L2 bound trainers clip each update to (0: none; not checked under differential privacy, whose noise passes it). */
  clipNorm?: number;
  /**
   * Secure rounds: each group's sum as soon as it is unmasked and checked, while other groups
   * may still collect (the caller scores it and folds it into the round's aggregate). Once it
   * returns, the group's words, which the sum's vector is a view of, are let go: the round holds
   * one group's vector at a time, not every settled group's until the last.
   */
  onSum?: (sum: GroupResult) => Promise<void>;
}

/**
 * Keeps the group sums that honest members could have made, within the quantization error;
 * any other is discarded with its members named (the sum cannot say which one lied):
 * - the unmasked total weight is what the members reported (their headers' sample counts, or
 *   1 each with unit weights): a member that put another weight in its masked input, to
 *   outweigh the rest or unbalance the mean, moves it;
 * - every coordinate is within what m members clipped to the group's range give: a masked
 *   input with words past the fixed-point range moves one beyond;
 * - with `clipNorm` (not under differential privacy, whose noise passes it), the mean update is
 *   no longer than the clip: each member's update is clipped to it, so their weighted mean is.
 */
export function checkGroupSums(results: readonly GroupResult[], round: Round<Task>, secure: SecureAggregation, o: { unitWeights: boolean; clipNorm: number }): { kept: GroupResult[]; discarded: FailedGroup[] } {
  const kept: GroupResult[] = [];
  const discarded: FailedGroup[] = [];
  for (const r of results) {
    const params = secure.groups.find((g) => g.params.groupId === r.groupId)?.params;
    const why = params ? implausible(r, params, round, o) : null;
    if (why) discarded.push({ groupId: r.groupId, members: r.members, reason: `${why}; the sum is discarded` });
    else kept.push(r);
  }
  return { kept, discarded };
}

/** Why honest members could not have made `r`, or null. */
function implausible(r: GroupResult, params: SecAggParams, round: Round<Task>, o: { unitWeights: boolean; clipNorm: number }): string | null {
  const m = r.members.length;
  const reported = r.members.reduce((n, id) => n + (o.unitWeights ? 1 : (round.member(id)?.numSamples ?? 0)), 0);
  const weightBound = params.maxWeight * weightErrorBound(m, params.quantBits) * (1 + 1e-9) + 1e-9;
  if (!(Math.abs(r.totalWeight - reported) <= weightBound)) {
    return `its unmasked total weight is ${r.totalWeight.toFixed(3)} where its members reported ${reported}: a member's masked input carries another weight`;
  }
  const err = params.maxWeight * quantErrorBound(m, params.clipRange, params.quantBits);
  const maxCoord = (params.maxWeight * m * params.clipRange + err) * (1 + 1e-6);
  // Measured as the sum was dequantized, in the same pass.
  const { maxAbs: max, sumSquares: sq } = r;
  if (!(max <= maxCoord)) {
    return `a coordinate of its unmasked sum is ${max.toPrecision(4)} where ${m} members clipped to ${params.clipRange} can give at most ${maxCoord.toPrecision(4)}: a member's masked input is past the fixed-point range`;
  }
  const clip = o.unitWeights ? 0 : o.clipNorm;
  const weight = Math.max(r.totalWeight, 1e-12);
  const norm = Math.sqrt(sq) / weight;
  if (clip > 0 && !(norm <= (clip + (err * Math.sqrt(r.weightedSum.length)) / weight) * (1 + 1e-5))) {
    return `its mean update's L2 norm is ${norm.toPrecision(4)} where every member's update is clipped to ${clip}: a member sent a larger one`;
  }
  return null;
}

/**
 * Waits for TRAIN to end and, secure, for the groups to unmask; records each member's task in
 * the registry (on time or not, samples a second).
 */
export async function collectRound(open: OpenRound, o: CollectOptions): Promise<Collected> {
  const { round, secure } = open;
  const { registry, log, signal } = o;
  const sweep = setInterval(() => {
    for (const m of round.members()) if (m.status === 'assigned' && !registry.isLive(m.nodeId)) {
      log.warn('trainer lost mid-round', { nodeId: m.nodeId, round: round.round });
      round.drop(m.nodeId);
      secure?.drop(m.nodeId);
    }
    // Under secure aggregation a member may still owe unmask shares after it reported.
    if (secure) for (const m of round.members()) if (m.status === 'reported' && !registry.isLive(m.nodeId)) secure.drop(m.nodeId);
  }, SWEEP_MS);
  const onAbort = () => round.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) round.cancel();
  try {
    const outcome = await round.trained;
    let collected: Collected = { outcome, reporters: new Set(round.members().filter((m) => m.status === 'reported').map((m) => m.nodeId)), sums: [], failed: [] };
    if (secure && !signal.aborted) {
      secure.closeInputs();
      // Each group as it settles: unmasked, checked, and handed on (`onSum`) while others still collect.
      const kept: GroupResult[] = [];
      const failed: FailedGroup[] = [];
      for await (const g of secure.settledGroups(signal)) {
        const r = await secure.finishGroup(g);
        const checked = 'result' in r ? checkGroupSums([r.result], round, secure, { unitWeights: o.unitWeights === true, clipNorm: o.clipNorm ?? 0 }) : { kept: [], discarded: [r.failed] };
        for (const f of checked.discarded) {
          log.warn('secure aggregation group dropped', { round: round.round, groupId: f.groupId, members: f.members, reason: f.reason });
          failed.push(f);
          g.release();
        }
        for (const sum of checked.kept) {
          kept.push(sum);
          if (!o.onSum) continue;
          await o.onSum(sum);
          sum.weightedSum = new Float32Array(0);
          g.release(true);
        }
      }
      secure.close();
      // In the groups' order, not the order they happened to settle in.
      const order = new Map(secure.groups.map((g, i) => [g.groupId, i]));
      const byGroup = (a: { groupId: string }, b: { groupId: string }) => order.get(a.groupId)! - order.get(b.groupId)!;
      collected = { outcome, reporters: new Set(kept.flatMap((r) => r.members)), sums: kept.sort(byGroup), failed: failed.sort(byGroup) };
    }
    // A round stopped from outside (the job cancelled, the coordinator stopping) holds no one's record against them.
    if (!signal.aborted) {
      // A member that revealed a corrupted share is recorded as if it had not reported.
      const culprits = new Set(collected.sums.flatMap((r) => r.culprits));
      for (const m of round.members()) {
        const reported = m.status === 'reported' && !culprits.has(m.nodeId);
        registry.recordTask(m.nodeId, reported, reported && m.trainSeconds > 0 ? (m.numSamples * o.localEpochs) / m.trainSeconds : undefined, m.status === 'assigned');
      }
    }
    return collected;
  } finally {
    clearInterval(sweep);
    signal.removeEventListener('abort', onAbort);
  }
}
