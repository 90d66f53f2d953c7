/**
 * Phase 1 of a round, plan: who trains on what. Takes the trainers a job may select now, the
 * dataset nodes' shards and the global model's digest; gives the cohort (weighted by capacity
 * and record, `selection.ts`), each member's task (its shards dealt in proportion to capacity,
 * hyper-parameters, a training seed, the round's deadline, and one signed lease per dataset
 * node it reads from) and, under secure aggregation, the SecAgg+ groups and their parameters
 * (`secagg/params.ts`). Planning does not wait: the trainers seen free are still free when the
 * plan is claimed.
 */
import { randomUUID } from 'node:crypto';
import { planGroups, type GroupHistory, type GroupSettings, type SecAggParams } from '../secagg/index.js';
import { signLease, type ShardLease, type ShardRef, type Signer, type Task } from '../wire/index.js';
import type { Random } from '../util/index.js';
import { assignShards, selectCohort } from './selection.js';
import type { DatasetRecord, TrainerRecord } from './node-registry.js';

/** How long a lease outlives its round's deadline (a trainer may still be reading a shard). */
export const LEASE_GRACE_MS = 60_000;

/** One member of a planned round: the task it will be handed. */
export interface PlannedMember {
  nodeId: string;
  taskId: string;
  task: Task;
}

/** What a round will do, before anything is handed out. */
export interface RoundPlan {
  members: PlannedMember[];
  /** SecAgg+ groups, their members' identity keys included in each task (null: plaintext). */
  groups: SecAggParams[] | null;
  /** Secure rounds: each member's Ed25519 identity key, which its group's peers check signatures with. */
  identities: ReadonlyMap<string, Uint8Array>;
  deadlineMs: number;
  /** Trainers selected but left out: nothing there was to deal them was a shard they can read. */
  unreadable: string[];
}

/** The job settings a plan follows (a job's resolved config has them all). */
export interface PlanSettings {
  jobId: string;
  task: string;
  cohort: number;
  /** 0: every shard of every dataset node. */
  shardsPerRound: number;
  roundTimeoutMs: number;
  localEpochs: number;
  batchSize: number;
  learningRate: number;
  optimizer: 'adam' | 'sgd';
  clipNorm: number;
  /** Secure aggregation, or null for plaintext updates. */
  secure: GroupSettings | null;
  /** Differential privacy: every update weighs 1 and carries its share of the noise (null: off). */
  dp: { noiseMultiplier: number } | null;
}

/** What {@link planRound} needs. */
export interface PlanInput {
  config: PlanSettings;
  round: number;
  attempt: number;
  /** Trainers the job may select now, and at most how many. */
  trainers: readonly TrainerRecord[];
  cap: number;
  datasets: readonly DatasetRecord[];
  /** Digest, size and topology of the global model trainers start from. */
  model: NonNullable<Task['model']>;
  rng: Random;
  /** Secure jobs: groups of recent rounds (the differencing rule). */
  history: GroupHistory;
  /**
   * Shards not to deal to a trainer (null: to any), such as those reported failing their digest
   * check (absent: none).
   */
  shardFailed?: (trainerId: string | null, shard: ShardRef) => boolean;
  /** Signs each trainer's shard leases (absent: tasks carry none). */
  leaseSigner?: Signer;
  now?: number;
}

/** One lease for each dataset node whose shards `trainer` was dealt. */
function leasesFor(signer: Signer, trainer: string, shards: readonly ShardRef[], expiresUnixMs: number): ShardLease[] {
  const byNode = new Map<string, string[]>();
  for (const s of shards) (byNode.get(s.datasetNodeId) ?? byNode.set(s.datasetNodeId, []).get(s.datasetNodeId)!).push(s.shardId);
  return [...byNode].map(([datasetNodeId, shardIds]) => signLease(signer, { datasetNodeId, trainer, shardIds, expiresUnixMs }));
}

/**
 * Moves each shard dealt to a trainer that reported it failing to a trainer that did not: swapped
 * for one of that trainer's shards the first can read, or else handed over; a shard every trainer
 * reported is left out of the round. Only reported shards move: the rest of the deal stands.
 */
export function keepFailedShardsAway(members: readonly string[], dealt: ShardRef[][], failed: (trainerId: string, shard: ShardRef) => boolean): void {
  members.forEach((id, i) => {
    const mine = dealt[i]!;
    const readable = (x: ShardRef) => !failed(id, x);
    for (let k = mine.length - 1; k >= 0; k--) {
      const s = mine[k]!;
      if (readable(s)) continue;
      mine.splice(k, 1);
      const takers = members.flatMap((other, j) => (j !== i && !failed(other, s) ? [j] : []));
      const swap = takers.find((j) => dealt[j]!.some(readable));
      if (swap !== undefined) {
        const theirs = dealt[swap]!;
        const t = theirs.findIndex(readable);
        mine.push(theirs[t]!);
        theirs[t] = s;
      } else if (takers.length > 0) {
        dealt[takers[0]!]!.push(s);
      }
    }
  });
}

/**
 * The plan of one round attempt; null when the job is secure and no grouping of the cohort
 * avoids a group differing by one member from a recent one (the caller retries with a fresh
 * cohort).
 */
export function planRound(input: PlanInput): RoundPlan | null {
  const { config: cfg, rng } = input;
  const selected = selectCohort(input.trainers, Math.min(cfg.cohort, input.cap), rng);
  const failed = input.shardFailed ?? (() => false);
  const pool: ShardRef[] = input.datasets.flatMap((d) => d.shards.map((s) => ({
    datasetAddress: d.address, datasetNodeId: d.nodeId, shardId: s.shardId, numSamples: s.numSamples, sha256: s.sha256,
  }))).filter((s) => !failed(null, s));
  const deal = assignShards(selected, cfg.shardsPerRound > 0 ? rng.shuffle(pool).slice(0, cfg.shardsPerRound) : pool, rng);
  const hadShards = deal.map((d) => d.length > 0);
  if (input.shardFailed) keepFailedShardsAway(selected.map((c) => c.nodeId), deal, input.shardFailed);
  // A trainer dealt nothing it can read has nothing to train on: it is not in the round.
  const cohort = selected.filter((_, i) => deal[i]!.length > 0);
  const dealt = deal.filter((d) => d.length > 0);
  const unreadable = selected.filter((_, i) => hadShards[i] && deal[i]!.length === 0).map((c) => c.nodeId);
  const deadlineMs = (input.now ?? Date.now()) + cfg.roundTimeoutMs;
  const members: PlannedMember[] = cohort.map((c, i) => {
    const taskId = randomUUID();
    const task: Task = {
      taskId, jobId: cfg.jobId, round: input.round, task: cfg.task, model: input.model,
      train: {
        localEpochs: cfg.localEpochs, batchSize: cfg.batchSize, learningRate: cfg.learningRate,
        optimizer: cfg.optimizer, clipNorm: cfg.clipNorm, seed: rng.uint32(), dpNoiseMultiplier: cfg.dp?.noiseMultiplier ?? 0,
      },
      shards: dealt[i]!, deadlineUnixMs: deadlineMs, secagg: null, leases: [],
    };
    if (input.leaseSigner) task.leases = leasesFor(input.leaseSigner, c.nodeId, dealt[i]!, deadlineMs + LEASE_GRACE_MS);
    return { nodeId: c.nodeId, taskId, task };
  });
  const identities = new Map<string, Uint8Array>(cohort.map((c) => [c.nodeId, c.identityKey]));
  if (!cfg.secure) return { members, groups: null, identities, deadlineMs, unreadable };
  // Under differential privacy each update weighs 1: the sum's sensitivity to one trainer is the clip.
  const groups = planGroups(members.map((m) => ({ nodeId: m.nodeId, samples: cfg.dp ? 1 : m.task.shards.reduce((n, s) => n + s.numSamples, 0) })), {
    roundId: `${cfg.jobId}/${input.round}/${input.attempt}`, vectorLength: input.model.numParams + 1,
    settings: cfg.secure, history: input.history, rng,
  });
  if (groups.length === 0) return null;
  // Groups take the whole cohort; each member's task carries its group and the group's keys.
  const byId = new Map(members.map((m) => [m.nodeId, m]));
  for (const g of groups) {
    for (const id of g.members) byId.get(id)!.task.secagg = { ...g, identityKeys: g.members.map((x) => Buffer.from(identities.get(x)!)) };
  }
  const grouped = new Set(groups.flatMap((g) => g.members));
  return { members: members.filter((m) => grouped.has(m.nodeId)), groups, identities, deadlineMs, unreadable };
}
