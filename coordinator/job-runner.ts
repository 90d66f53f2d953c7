/**
 * Runs one job: round after round, select a cohort among live trainers, deal shards in
 * proportion to capacity, hand out tasks, wait for the TRAIN phase to end (all reported, members
 * lost, or the deadline), aggregate with the job's strategy, evaluate the new global model on
 * validation data the trainers never see, and record the result. A round with fewer than
 * `minTrainers` updates is retried with a fresh cohort.
 */
import * as tf from '@tensorflow/tfjs';
import { randomBytes, randomUUID } from 'node:crypto';
import { createStrategy, type Strategy } from '../src/aggregation/index.js';
import { buildModel, topologyJson } from '../src/model/spec.js';
import { getFlatParams, setFlatParams } from '../src/model/params.js';
import { evaluate, lossGradient, type Dataset, type Evaluation } from '../src/model/train.js';
import type { GroupEvaluation, Scoreboard, ScoredGroup } from '../src/scoring/scoreboard.js';
import { getTask, type TaskDefinition } from '../src/tasks/index.js';
import { Round } from '../src/rounds/round.js';
import { assignShards, selectCohort } from '../src/rounds/selection.js';
import { GroupHistory, SecureAggregation } from '../src/rounds/secure-aggregation.js';
import { roundScale, scoreStep } from '../src/scoring/first-order.js';
import { defaultNeighbours, defaultThreshold, type SecAggParams } from '../src/secagg/constants.js';
import { quantBitsFor } from '../src/secagg/quantize.js';
import type { MaskPool } from '../src/secagg/mask-pool.js';
import type { NodeRegistry, TrainerRecord } from '../src/rounds/node-registry.js';
import { Random } from '../src/util/random.js';
import { float32ToBytes, sha256 } from '../src/wire/blob.js';
import { RoundNotFoundError } from '../src/errors.js';
import { sleep } from '../src/node/registration.js';
import { Notifier } from '../src/util/notifier.js';
import type { RoundResult, ShardRef, Task } from '../src/wire/proto.js';
import type { CoordinatorMetrics } from '../src/metrics/index.js';
import type { Logger } from '../src/util/log.js';
import type { JobConfig } from './config.js';
import type { CoordinatorStore } from './store.js';
import type { NodeLedger } from './ledger.js';
import { signLease } from '../src/wire/lease.js';
import type { Signer } from '../src/wire/auth.js';
import type { ShardLease } from '../src/wire/proto.js';

/** How long a lease outlives its round's deadline (a trainer may still be reading a shard). */
const LEASE_GRACE_MS = 60_000;

/** One lease for each dataset node whose shards `trainer` was dealt. */
function leasesFor(signer: Signer, trainer: string, shards: ShardRef[], expiresUnixMs: number): ShardLease[] {
  const byNode = new Map<string, string[]>();
  for (const s of shards) (byNode.get(s.datasetNodeId) ?? byNode.set(s.datasetNodeId, []).get(s.datasetNodeId)!).push(s.shardId);
  return [...byNode].map(([datasetNodeId, shardIds]) => signLease(signer, { datasetNodeId, trainer, shardIds, expiresUnixMs }));
}

/** A dataset node as the coordinator knows it. */
export interface DatasetRecord {
  nodeId: string;
  address: string;
  task: string;
  shards: { shardId: string; numSamples: number; sha256: string }[];
  lastSeenMs: number;
}

/** What the job runner needs from its process. */
/** The trainers a job may select now, at most `cap` of them; `shared` while other jobs hold shares. */
export interface Availability {
  trainers: TrainerRecord[];
  cap: number;
  shared: boolean;
}

export interface JobRunnerDeps {
  registry: NodeRegistry;
  datasets: () => DatasetRecord[];
  metrics: CoordinatorMetrics;
  log: Logger;
  /** Human progress lines. */
  progress: (line: string) => void;
  /** Threads for unmasking (off the gRPC event loop). */
  maskPool?: MaskPool;
  /** Sees each group's masked sum before unmasking (tests of what the coordinator holds). */
  onBeforeUnmask?: (groupId: string, maskedSum: Uint32Array) => void;
  /** Durable state: rounds and checkpoints (absent: nothing survives the process). */
  store?: CoordinatorStore;
  /** Called after each completed round (persist history, etc.). */
  onRound?: (result: RoundRecord) => Promise<void> | void;
  /** Scores and node records shared by every job of the coordinator. */
  ledger: NodeLedger;
  /**
   * The trainers this job may select now (other jobs' rounds hold theirs; shares follow
   * priority and task weight). Absent: every eligible trainer.
   */
  available?: (job: JobRunner) => Availability;
  /** Woken whenever a task is assigned (shared by the jobs, so one long poll serves them all). */
  taskChanged?: Notifier;
  /** The model, already built and checked against the coordinator's budgets. */
  model?: tf.LayersModel;
  /** Signs each trainer's shard leases (absent: tasks carry none, and dataset nodes refuse them). */
  leaseSigner?: Signer;
}

/** A completed round as the coordinator keeps it: the wire result plus who reported. */
export interface RoundRecord extends RoundResult {
  reporters: string[];
  /** Keypoint tasks: the mean keypoint error on validation data, in image widths. */
  valMeanError?: number;
  /** Dataset nodes whose shards the reporters trained on. */
  datasets?: string[];
}

export type JobState = 'PENDING' | 'RUNNING' | 'DONE' | 'FAILED' | 'CANCELLED';

/** A job in progress. */
export class JobRunner {
  readonly task: TaskDefinition;
  readonly history: RoundRecord[] = [];
  state: JobState = 'PENDING';
  /** The round being run (1-based); rounds before it are done. */
  currentRound = 1;
  current: Round<Task> | null = null;
  /** The running round's secure aggregation (null in plaintext jobs). */
  secure: SecureAggregation | null = null;
  private globalParams!: Float32Array;
  private globalBytes!: Buffer;
  private globalSha = '';
  private readonly model: tf.LayersModel;
  readonly topology: string;
  private readonly strategy: Strategy;
  private validation: Dataset;
  private rng: Random;
  private readonly taskChanged: Notifier;
  /** Groups whose sums were seen in recent rounds: new groups never differ from them by one. */
  private readonly groupHistory = new GroupHistory();

  constructor(readonly config: JobConfig, private readonly deps: JobRunnerDeps) {
    this.task = getTask(config.task);
    this.model = deps.model ?? buildModel(config.model, this.task.inputShape, this.task.head, config.modelSeed);
    this.taskChanged = deps.taskChanged ?? new Notifier();
    this.topology = topologyJson(this.model);
    this.strategy = createStrategy(config.strategy, config.serverLearningRate > 0 ? { serverLearningRate: config.serverLearningRate } : {});
    const v = this.task.generateValidation(config.validationSeed, config.validationSamples);
    this.validation = { count: v.count, features: this.task.features(v.x, v.count), labels: v.y, keypoints: v.keypoints };
    this.rng = new Random(`${config.jobId}/${config.validationSeed}/selection`);
  }

  /**
   * Loads the initial parameters; call once before {@link run}. With a store, a job it already
   * holds continues: the validation seed it ran with, its rounds, the last round's checkpoint
   * (digest-checked) and strategy state, and the scores rebuilt from the recorded groups.
   */
  async init(): Promise<void> {
    this.setGlobal(await getFlatParams(this.model));
    const store = this.deps.store;
    if (!store) return;
    const cfg = this.config;
    const identity = JSON.stringify({ task: cfg.task, model: cfg.model, modelSeed: cfg.modelSeed, strategy: cfg.strategy, serverLearningRate: cfg.serverLearningRate });
    const stored = store.job(cfg.jobId);
    if (!stored) {
      store.saveJob(cfg.jobId, JSON.stringify({ identity, validationSeed: cfg.validationSeed }), 'PENDING');
      return;
    }
    const saved = JSON.parse(stored.config) as { identity: string; validationSeed: string };
    if (saved.identity !== identity) {
      throw new Error(`job ${cfg.jobId}: the store holds it with another task, model or strategy (${saved.identity}); use another --out or --job-id`);
    }
    if (saved.validationSeed !== cfg.validationSeed) {
      const v = this.task.generateValidation(saved.validationSeed, cfg.validationSamples);
      this.validation = { count: v.count, features: this.task.features(v.x, v.count), labels: v.y, keypoints: v.keypoints };
      this.globalEval = null;
      this.rng = new Random(`${cfg.jobId}/${saved.validationSeed}/selection/resumed`);
    }
    const rounds = store.rounds<RoundRecord, ScoredGroup[]>(cfg.jobId);
    const last = rounds.at(-1);
    if (!last) return;
    const cp = store.readCheckpoint(last.checkpoint);
    if (cp.params.length !== this.paramCount) throw new Error(`checkpoint ${last.checkpoint}: expected ${this.paramCount} parameters, got ${cp.params.length}`);
    this.setGlobal(cp.params);
    this.strategy.restore(cp.strategy);
    for (const r of rounds) {
      this.history.push(r.record);
      for (const g of r.groups) this.scoreboard.observe(g);
      this.groupHistory.add(r.groups.map((g) => g.members.map((m) => m.id)));
    }
    this.updateScores();
    this.currentRound = last.round + 1;
    this.resumedFrom = last.round;
    this.deps.log.info('job resumed', { jobId: cfg.jobId, afterRound: last.round, checkpoint: last.checkpoint });
  }

  /** Every node's contribution score (shared by the coordinator's jobs). */
  get scoreboard(): Scoreboard {
    return this.deps.ledger.scoreboard;
  }

  /** Trainers held by this job's running round (until it is finished). */
  busyTrainers(): string[] {
    const r = this.current;
    if (!r || r.phase === 'DONE' || r.phase === 'FAILED') return [];
    return r.members().map((m) => m.nodeId);
  }

  /** The round a restarted job continued after (0: it started afresh). */
  resumedFrom = 0;

  get paramCount(): number {
    return this.globalParams.length;
  }

  /** The global parameters trainers start round `round` from, as bytes with their digest. */
  globalModel(round: number): { bytes: Buffer; sha256: string } {
    if (round !== this.currentRound) throw new RoundNotFoundError(this.config.jobId, round, this.currentRound);
    return { bytes: this.globalBytes, sha256: this.globalSha };
  }

  /** Current global parameters (a copy). */
  params(): Float32Array {
    return new Float32Array(this.globalParams);
  }

  /**
   * The task assigned to `nodeId` in the running round, if it still wants an update. Under
   * secure aggregation a task can only be (re)started before its node advertised keys: a node
   * asking again later has lost its keys, so it leaves its group now instead of at a deadline.
   */
  taskFor(nodeId: string): Task | null {
    const r = this.current;
    const m = r?.member(nodeId);
    if (!r || !m || !r.isTaskActive(m.taskId)) return null;
    if (this.secure && !this.secure.canStart(nodeId)) {
      this.deps.log.warn('trainer asked for its secure task again; dropping it from its group', { nodeId, round: r.round });
      this.secure.drop(nodeId);
      r.drop(nodeId);
      return null;
    }
    return m.task;
  }

  /** Waits until a task may exist for `nodeId`, at most `ms`. */
  async waitForTask(nodeId: string, ms: number, signal: AbortSignal): Promise<Task | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const t = this.taskFor(nodeId);
      if (t || signal.aborted) return t;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await this.taskChanged.wait(left, signal);
    }
  }

  private setGlobal(params: Float32Array): void {
    this.globalParams = params;
    this.globalBytes = Buffer.from(float32ToBytes(params));
    this.globalSha = sha256(this.globalBytes).toString('hex');
  }

  /** Evaluates the current global model on the validation data. */
  async evaluateGlobal(): Promise<Evaluation> {
    // The same global model is evaluated at the end of a round and again as the base of the
    // next round's group evaluations: once is enough.
    if (this.globalEval?.sha === this.globalSha) return this.globalEval.ev;
    setFlatParams(this.model, this.globalParams);
    const ev = await evaluate(this.model, this.validation, this.task.head);
    this.globalEval = { sha: this.globalSha, ev };
    return ev;
  }

  private globalEval: { sha: string; ev: Evaluation } | null = null;

  /** The model with the current global parameters (for export). */
  exportModel(): tf.LayersModel {
    setFlatParams(this.model, this.globalParams);
    return this.model;
  }

  /** Runs every round; resolves when the job is done, failed or `signal` aborted. */
  async run(signal: AbortSignal): Promise<JobState> {
    const { log, progress, metrics } = this.deps;
    const cfg = this.config;
    this.state = 'RUNNING';
    this.deps.store?.saveJob(cfg.jobId, '', 'RUNNING');
    metrics.currentRound.set({ job: cfg.jobId }, this.currentRound);
    if (this.resumedFrom >= cfg.rounds) progress(`job ${cfg.jobId}: already done (${this.resumedFrom} rounds recorded in this --out); use another --out or --job-id to train again`);
    else if (this.resumedFrom > 0) progress(`job ${cfg.jobId}: resumed after round ${this.resumedFrom} of ${cfg.rounds} from its checkpoint`);
    const initial = await this.evaluateGlobal();
    progress(`job ${cfg.jobId}: ${this.task.name}, ${this.paramCount.toLocaleString('en-US')} parameters, ${cfg.rounds} rounds, ${cfg.strategy}; initial val ${this.task.metricName} ${(initial.accuracy * 100).toFixed(1)}%`);
    while (this.currentRound <= cfg.rounds && !signal.aborted) {
      let done = false;
      for (let attempt = 1; attempt <= cfg.maxAttempts && !signal.aborted; attempt++) {
        done = await this.runRound(attempt, signal);
        if (done) break;
      }
      if (signal.aborted) break;
      if (!done) {
        this.state = 'FAILED';
        this.deps.store?.saveJob(cfg.jobId, '', 'FAILED');
        progress(`job ${cfg.jobId}: round ${this.currentRound} failed ${cfg.maxAttempts} times; job failed`);
        log.error('job failed', { jobId: cfg.jobId, round: this.currentRound });
        return this.state;
      }
      this.currentRound++;
      metrics.currentRound.set({ job: cfg.jobId }, this.currentRound);
    }
    // A stop (SIGTERM, close) is not a cancellation of the job: it resumes on the next start.
    this.state = signal.aborted ? 'CANCELLED' : 'DONE';
    if (!signal.aborted) this.deps.store?.saveJob(cfg.jobId, '', 'DONE');
    return this.state;
  }

  /** Trainers that may be selected: live, and able to sign keys when aggregation is secure. */
  eligible(): TrainerRecord[] {
    const live = this.deps.registry.live();
    return this.config.secure ? live.filter((r) => r.identityKey.length === 32) : live;
  }

  /** The trainers this job may select now, and how many of them at most. */
  private available(): Availability {
    if (this.deps.available) return this.deps.available(this);
    const trainers = this.eligible();
    return { trainers, cap: trainers.length, shared: false };
  }

  /** True when some live dataset node serves shards of this job's task. */
  hasData(): boolean {
    return this.deps.datasets().some((d) => d.shards.length > 0);
  }

  /** True while the job waits for trainers or data before a round. */
  waiting = false;

  /** Live trainers a round needs before it starts. */
  get minLive(): number {
    return Math.max(this.config.minTrainers, this.config.secure?.minGroupSize ?? 1);
  }

  /** The SecAgg+ parameters of each group of the cohort (secure jobs only). */
  private planGroups(members: { nodeId: string; task: Task }[], attempt: number): SecAggParams[] {
    const sec = this.config.secure!;
    const samples = new Map(members.map((m) => [m.nodeId, m.task.shards.reduce((n, s) => n + s.numSamples, 0)]));
    return this.groupHistory.draw(members.map((m) => m.nodeId), sec.minGroupSize, this.rng).map((ids, i) => {
      const n = ids.length;
      const k = sec.neighbours > 0 ? Math.min(sec.neighbours, n - 1) : defaultNeighbours(n);
      return {
        roundId: `${this.config.jobId}/${this.currentRound}/${attempt}`,
        groupId: `g${i}`,
        members: ids,
        neighbours: k,
        threshold: sec.threshold > 0 ? Math.min(sec.threshold, k) : defaultThreshold(k),
        clipRange: sec.clipRange,
        quantBits: quantBitsFor(n),
        vectorLength: this.paramCount + 1,
        maxWeight: Math.max(1, ...ids.map((id) => samples.get(id) ?? 0)),
        seed: randomBytes(32),
      };
    });
  }

  /** Adds the round's scored groups to the scoreboard and recomputes every score. */
  /**
   * How the validation loss and the task metric change when only `sum x scale` (a group's mean
   * update) is applied to the global model, against `base`, the global model's evaluation.
   */
  private async evaluateStep(sum: Float32Array, scale: number, base: Evaluation): Promise<GroupEvaluation> {
    const p = new Float32Array(this.globalParams.length);
    for (let i = 0; i < p.length; i++) p[i] = this.globalParams[i]! + sum[i]! * scale;
    setFlatParams(this.model, p);
    const ev = await evaluate(this.model, this.validation, this.task.head);
    setFlatParams(this.model, this.globalParams);
    return { lossChange: ev.loss - base.loss, metricChange: ev.accuracy - base.accuracy };
  }

  private scoreGroups(groups: { members: string[]; score: number; norm2: number; evaluated?: GroupEvaluation }[], grad: Float32Array, round: Round<Task>, roundKey: string): ScoredGroup[] {
    // A diverged model (non-finite gradient or steps) says nothing about anyone: skip it.
    const finite = groups.filter((g) => Number.isFinite(g.score) && Number.isFinite(g.norm2));
    if (finite.length < groups.length) this.deps.log.warn('groups with non-finite scores left unscored', { round: roundKey, groups: groups.length - finite.length });
    groups = finite;
    const scale = roundScale(grad, groups.map((g) => g.norm2));
    const out: ScoredGroup[] = [];
    for (const g of groups) {
      const members = g.members.map((id) => ({ id, samples: round.member(id)?.numSamples ?? 1 }));
      const bySource = new Map<string, number>();
      for (const id of g.members) for (const s of round.member(id)?.task.shards ?? []) bySource.set(s.datasetNodeId, (bySource.get(s.datasetNodeId) ?? 0) + s.numSamples);
      const scored: ScoredGroup = {
        round: roundKey, members, datasets: [...bySource].map(([id, samples]) => ({ id, samples })), score: g.score, scale, weight: this.config.taskWeight,
        ...(g.evaluated ? { evaluated: g.evaluated } : {}),
      };
      this.scoreboard.observe(scored);
      out.push(scored);
    }
    this.updateScores();
    return out;
  }

  private updateScores(): void {
    this.deps.ledger.updateScores();
  }

  /** Waits until enough trainers and at least one dataset node are live. */
  private async waitForNodes(signal: AbortSignal): Promise<void> {
    this.waiting = true;
    try {
      await this.waitForNodesLoop(signal);
    } finally {
      this.waiting = false;
    }
  }

  private async waitForNodesLoop(signal: AbortSignal): Promise<void> {
    let lastNote = '';
    let enoughSince = 0;
    while (!signal.aborted) {
      const { trainers, cap, shared } = this.available();
      const live = Math.min(trainers.length, cap);
      const shards = this.deps.datasets().reduce((n, d) => n + d.shards.length, 0);
      if (live >= this.minLive && shards > 0) {
        // Before the first round, give the rest of the cohort a moment to register. A job
        // alone waits for its whole cohort (its cap is just the number live so far); one that
        // shares the trainers with other jobs settles for its share.
        const target = shared ? Math.min(this.config.cohort, cap) : this.config.cohort;
        if (this.history.length > 0 || live >= target) return;
        enoughSince ||= Date.now();
        if (Date.now() - enoughSince >= this.config.cohortWaitMs) return;
      } else {
        enoughSince = 0;
      }
      const note = `round ${this.currentRound}: waiting for trainers (${live} live, need ${this.minLive}) and data (${shards} shards)`;
      if (note !== lastNote) this.deps.progress(note);
      lastNote = note;
      await sleep(200, signal);
    }
  }

  private async runRound(attempt: number, signal: AbortSignal): Promise<boolean> {
    const { registry, log, progress, metrics } = this.deps;
    const cfg = this.config;
    // Scores are first-order loss decreases at this round's global model: -grad . update.
    setFlatParams(this.model, this.globalParams);
    const grad = await lossGradient(this.model, this.validation, this.task.head);
    // From here to the claim of the cohort (this.current) nothing awaits: the trainers seen
    // free are still free when they are chosen.
    await this.waitForNodes(signal);
    if (signal.aborted) return false;
    const started = performance.now();
    this.deps.ledger.countRound();
    const plainScores = new Map<string, { score: number; norm2: number }>();
    const free = this.available();
    const cohort = selectCohort(free.trainers, Math.min(cfg.cohort, free.cap), this.rng);
    const pool: ShardRef[] = this.deps.datasets().flatMap((d) => d.shards.map((s) => ({
      datasetAddress: d.address, datasetNodeId: d.nodeId, shardId: s.shardId, numSamples: s.numSamples, sha256: s.sha256,
    })));
    const dealt = assignShards(cohort, cfg.shardsPerRound > 0 ? this.rng.shuffle(pool).slice(0, cfg.shardsPerRound) : pool, this.rng);
    const deadlineMs = Date.now() + cfg.roundTimeoutMs;
    const model = { topologyJson: this.topology, numParams: this.paramCount, paramsSha256: this.globalSha };
    const members = cohort.map((c, i) => {
      const taskId = randomUUID();
      const task: Task = {
        taskId, jobId: cfg.jobId, round: this.currentRound, task: this.task.name, model,
        train: {
          localEpochs: cfg.localEpochs, batchSize: cfg.batchSize, learningRate: cfg.learningRate,
          optimizer: cfg.optimizer, clipNorm: cfg.clipNorm, seed: this.rng.uint32(),
        },
        shards: dealt[i]!, deadlineUnixMs: deadlineMs,
      };
      if (this.deps.leaseSigner) task.leases = leasesFor(this.deps.leaseSigner, c.nodeId, dealt[i]!, deadlineMs + LEASE_GRACE_MS);
      return { nodeId: c.nodeId, taskId, task };
    });
    let secure: SecureAggregation | null = null;
    if (cfg.secure) {
      const groups = this.planGroups(members, attempt);
      if (groups.length === 0) {
        progress(`round ${this.currentRound}: no grouping of these ${members.length} trainers avoids one differing by a single member from a recent group; retrying with a fresh cohort`);
        await sleep(1000, signal);
        return false;
      }
      const grouped = new Set(groups.flatMap((g) => g.members));
      // Everyone is in a group (groups take the whole cohort); keep the tasks of those who are.
      members.splice(0, members.length, ...members.filter((m) => grouped.has(m.nodeId)));
      const identities = new Map(members.map((m) => [m.nodeId, registry.get(m.nodeId)!.identityKey as Uint8Array]));
      for (const g of groups) {
        for (const id of g.members) {
          members.find((m) => m.nodeId === id)!.task.secagg = { ...g, identityKeys: g.members.map((x) => Buffer.from(identities.get(x)!)) };
        }
      }
      secure = new SecureAggregation({
        groups, identities, stageTimeoutMs: cfg.secure.stageTimeoutMs, unmaskTimeoutMs: cfg.secure.unmaskTimeoutMs,
        onBeforeUnmask: this.deps.onBeforeUnmask, pool: this.deps.maskPool,
        onMembersLost: (ids, reason) => {
          log.warn('secure aggregation lost members', { round: this.currentRound, nodeIds: ids, reason });
          for (const id of ids) this.current?.drop(id);
        },
      });
    }
    this.secure?.close();
    this.secure = secure;
    const round = new Round<Task>({
      jobId: cfg.jobId, round: this.currentRound, attempt, paramCount: this.paramCount, deadlineMs, members,
      // Without secure aggregation the coordinator sees each update, so it scores each one.
      onAccepted: (nodeId, delta) => plainScores.set(nodeId, scoreStep(grad, delta)),
    });
    this.current = round;
    const samples = members.reduce((n, m) => n + m.task.shards.reduce((k, s) => k + s.numSamples, 0), 0);
    const groupNote = secure ? `, secure aggregation in ${secure.groups.length} groups of ${secure.groups.map((g) => g.params.members.length).join('+')}` : '';
    progress(`round ${this.currentRound}/${cfg.rounds}${attempt > 1 ? ` (attempt ${attempt})` : ''}: ${members.length} trainers, ${samples} samples${groupNote}, deadline ${cfg.roundTimeoutMs / 1000}s`);
    log.info('round started', { jobId: cfg.jobId, round: this.currentRound, attempt, cohort: members.map((m) => m.nodeId) });
    this.taskChanged.notify();
    // Drop members whose heartbeats stop, so a dead trainer does not hold the round to its deadline.
    const sweep = setInterval(() => {
      for (const m of round.members()) if (m.status === 'assigned' && !registry.isLive(m.nodeId)) {
        log.warn('trainer lost mid-round', { nodeId: m.nodeId, round: this.currentRound });
        round.drop(m.nodeId);
        secure?.drop(m.nodeId);
      }
      // Under secure aggregation a member may still owe unmask shares after it reported.
      if (secure) for (const m of round.members()) if (m.status === 'reported' && !registry.isLive(m.nodeId)) secure.drop(m.nodeId);
    }, 250);
    const onAbort = () => round.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    const outcome = await round.trained;
    let groupsDone = 0, groupsFailed = 0;
    const groupScores: { members: string[]; score: number; norm2: number; evaluated?: GroupEvaluation }[] = [];
    let reporters = new Set(round.members().filter((m) => m.status === 'reported').map((m) => m.nodeId));
    if (secure && !signal.aborted) {
      secure.closeInputs();
      await secure.unmasked(signal);
      const { results, failed } = await secure.finish();
      const base = results.length > 0 ? await this.evaluateGlobal() : null;
      for (const r of results) {
        round.aggregate.addWeighted(r.weightedSum, r.totalWeight, r.members.length);
        groupScores.push({ members: r.members, ...scoreStep(grad, r.weightedSum, 1 / r.totalWeight), evaluated: await this.evaluateStep(r.weightedSum, 1 / r.totalWeight, base!) });
      }
      for (const f of failed) log.warn('secure aggregation group dropped', { round: this.currentRound, groupId: f.groupId, reason: f.reason });
      reporters = new Set(results.flatMap((r) => r.members));
      this.groupHistory.add(results.map((r) => r.members));
      groupsDone = results.length;
      groupsFailed = failed.length;
    }
    clearInterval(sweep);
    signal.removeEventListener('abort', onAbort);
    for (const m of round.members()) {
      registry.recordTask(m.nodeId, m.status === 'reported', m.status === 'reported' && m.trainSeconds > 0
        ? (m.numSamples * cfg.localEpochs) / m.trainSeconds : undefined);
    }
    if (signal.aborted) {
      round.finish(false);
      return false;
    }
    if (reporters.size < cfg.minTrainers || (secure && groupsDone === 0)) {
      round.finish(false);
      metrics.roundsTotal.inc({ job: cfg.jobId, result: 'failed' });
      const what = secure ? `${reporters.size} of ${members.length} updates in ${groupsDone} unmasked groups (${groupsFailed} dropped)` : `only ${reporters.size} of ${members.length} updates`;
      progress(`round ${this.currentRound}: ${what} (${outcome.reason}); need ${cfg.minTrainers}, retrying`);
      return false;
    }
    if (!secure) for (const [id, step] of plainScores) if (reporters.has(id)) groupScores.push({ members: [id], ...step });
    const before = this.strategy.state();
    const next = this.strategy.aggregateTrain(this.globalParams, round.aggregate);
    if (!next.every(Number.isFinite)) {
      // Training diverged (too large a learning rate, say): keep the last good model, and the
      // strategy's state from before this aggregate (FedAdam's moments would carry the NaNs on).
      this.strategy.restore(before);
      round.finish(false);
      metrics.roundsTotal.inc({ job: cfg.jobId, result: 'failed' });
      progress(`round ${this.currentRound}: the aggregate is not finite (training diverged; lower --lr or --server-lr); the global model is kept, retrying`);
      log.warn('non-finite aggregate refused', { round: this.currentRound });
      return false;
    }
    const scored = this.scoreGroups(groupScores, grad, round, `${cfg.jobId}/${this.currentRound}/${attempt}`);
    this.setGlobal(next);
    const ev = await this.evaluateGlobal();
    const reported = round.members().filter((m) => reporters.has(m.nodeId));
    const nSamples = reported.reduce((n, m) => n + m.numSamples, 0);
    const trainLoss = reported.reduce((s, m) => s + m.trainLoss * m.numSamples, 0) / Math.max(nSamples, 1);
    const seconds = (performance.now() - started) / 1000;
    const result: RoundRecord = {
      round: this.currentRound, participants: reporters.size, cohort: members.length, samples: nSamples,
      trainLoss, valLoss: ev.loss, valAccuracy: ev.accuracy, durationSeconds: seconds, attempt,
      endedBy: outcome.reason, reporters: reported.map((m) => m.nodeId), groups: groupsDone, groupsFailed,
      datasets: [...new Set(reported.flatMap((m) => m.task.shards.map((sh) => sh.datasetNodeId)))].sort(),
      ...(ev.meanError !== undefined ? { valMeanError: ev.meanError } : {}),
    };
    if (this.deps.store) {
      // The checkpoint file first, then the round that names it: a crash between the two
      // leaves an unreferenced file, and the round runs again after the restart.
      const digest = this.deps.store.writeCheckpoint({ params: this.globalParams, strategy: this.strategy.state() });
      this.deps.store.saveRound(cfg.jobId, this.currentRound, result, scored, digest);
    }
    this.history.push(result);
    round.finish(true);
    metrics.roundsTotal.inc({ job: cfg.jobId, result: 'completed' });
    metrics.roundDuration.observe({ job: cfg.jobId }, seconds);
    metrics.validationAccuracy.set({ job: cfg.jobId }, ev.accuracy);
    metrics.validationLoss.set({ job: cfg.jobId }, ev.loss);
    const groupsText = secure ? ` in ${groupsDone} secure group${groupsDone === 1 ? '' : 's'}${groupsFailed ? ` (${groupsFailed} dropped)` : ''}` : '';
    progress(`round ${this.currentRound}/${cfg.rounds} done in ${seconds.toFixed(1)}s: ${reporters.size}/${members.length} trainers${groupsText}, train loss ${trainLoss.toFixed(3)}, val loss ${ev.loss.toFixed(3)}, val ${this.task.metricName} ${(ev.accuracy * 100).toFixed(1)}%${ev.meanError !== undefined ? `, mean keypoint error ${(ev.meanError * this.task.inputShape[1]!).toFixed(2)} px` : ''}${outcome.reason === 'all-reported' ? '' : ` (${outcome.reason})`}`);
    await this.deps.onRound?.(result);
    return true;
  }
}
