/**
 * Runs one job: round after round until its rounds are done, a round fails `maxAttempts` times,
 * or the job is stopped. A round is four phases, each a file in `src/rounds/`:
 *
 *   plan      (plan.ts)       cohort, shard deal, tasks and leases, SecAgg+ groups
 *   collect   (collect.ts)    hand out tasks; updates in, plain or secure, until all reported,
 *                             members lost, or the deadline; each secure group unmasks as soon
 *                             as it can, and is evaluated and aggregated then (its vector let go)
 *   evaluate  (evaluate.ts)   score each sum the coordinator saw, on validation data only it has
 *   aggregate (aggregate.ts)  the strategy's next global model, checkpoint, then the round record
 *
 * A round with fewer than `minTrainers` updates, a diverged aggregate, or a phase that throws
 * fails that attempt: it is recorded and retried with a fresh cohort, and nothing of it is kept
 * (scores, model and strategy state stay as they were). A full disk (a checkpoint or the store
 * refused for want of space) is not the round's fault: the attempt is not counted, and the job
 * waits for space with growing pauses (up to 30 s), serving meanwhile.
 * Timers and listeners of a round are released however it ends; the job's promise never
 * rejects.
 */
import { createStrategy, type Strategy } from '../aggregation/index.js';
import type { BackendName, Evaluation, ModelBudget, ModelCost } from '../model/index.js';
import type { Scoreboard, ScoredGroup } from '../scoring/index.js';
import { getTask, type TaskDefinition } from '../tasks/index.js';
import {
  aggregateRound, checkpointRound, collectRound, evaluateGroup, GlobalModel, ModelHost, openRound, plainSums, planRound, scoreGroups, type EvaluatedSum,
  type Collected, type DatasetRecord, type ModelExample, type ModelSaved, type NodeRegistry, type OpenRound, type Round, type RoundPlan, type TrainerRecord,
} from '../rounds/index.js';
import { GroupHistory, type GroupResult, type MaskPool, type SecureAggregation, type SumStorage } from '../secagg/index.js';
import { Notifier, Random, sleep, type Logger } from '../util/index.js';
import { RdpAccountant } from '../privacy/index.js';
import { ModelMemoryError, ModelProcessError, RoundNotFoundError } from '../errors.js';
import type { RoundResult, ShardRef, Signer, Task } from '../wire/index.js';
import type { CoordinatorMetrics } from '../metrics/index.js';
import type { CoordinatorStore } from '../store/index.js';
import type { JobConfig } from './job-config.js';
import type { NodeLedger } from './ledger.js';

/** The trainers a job may select now, at most `cap` of them; `shared` while other jobs hold shares. */
export interface Availability {
  trainers: TrainerRecord[];
  cap: number;
  shared: boolean;
}

/** What the job runner needs from its process. */
export interface JobRunnerDeps {
  registry: NodeRegistry;
  datasets: () => DatasetRecord[];
  metrics: CoordinatorMetrics;
  log: Logger;
  /** Human progress lines. */
  progress: (line: string) => void;
  /** Threads for unmasking (off the gRPC event loop). */
  maskPool?: MaskPool;
  /** Where secure groups' running sums live (`secagg/group-sum.ts`; shared memory when absent). */
  sumStorage?: SumStorage;
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
  /** What a job's model may cost (parameters, FLOPs, activations); checked before it is built. */
  budget: ModelBudget;
  /** Most resident memory a job's model process may have, in bytes (it is killed past it, and the job fails). */
  modelMemoryBytes: number;
  /** The TF.js backend the model process selects ('auto': the fastest that loads). */
  modelBackend: BackendName;
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
  /**
   * Differential privacy: the noise multiplier the round's released sums carried at the least
   * (members that dropped before their masked input added no noise), and epsilon spent so far.
   */
  dpNoiseMultiplier?: number;
  epsilon?: number;
  /**
   * Seconds each phase of the round took: the validation gradient at the round's global model,
   * plan (cohort, groups, tasks), collect (training, uploads, unmasking), evaluate (each sum's
   * score), aggregate (the strategy), validate (the new model on validation data). The record
   * is what the checkpoint stores, so the checkpoint's own time is not in it (it is in the
   * metric and the log line).
   */
  phaseSeconds?: Record<Exclude<RoundPhase, 'checkpoint'>, number>;
}

/** The phases a round's time is told in (the metric and log line; RoundRecord.phaseSeconds all but checkpoint). */
export const ROUND_PHASES = ['gradient', 'plan', 'collect', 'evaluate', 'aggregate', 'validate', 'checkpoint'] as const;
export type RoundPhase = (typeof ROUND_PHASES)[number];

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
  /** True while the job waits for trainers or data before a round. */
  waiting = false;
  /** The round a restarted job continued after (0: it started afresh). */
  resumedFrom = 0;
  /** The model's TF.js topology (JSON), as trainers build it; set by {@link init}. */
  topology = '';
  /** What the model costs (parameters, FLOPs, layers, activations); set by {@link init}. */
  cost: ModelCost | null = null;
  /** Why the job failed (empty unless FAILED). */
  failure = '';
  private global!: GlobalModel;
  private host: ModelHost | null = null;
  /** Aborted when the model's process ends on its own (memory, a trap, a kill): the job fails then. */
  private readonly modelFailed = new AbortController();
  private readonly strategy: Strategy;
  private rng: Random;
  private readonly taskChanged: Notifier;
  /** Groups whose sums were seen in recent rounds: new groups never differ from them by one. */
  private readonly groupHistory = new GroupHistory();
  /** Share of a round's members that miss its deadline (an exponential average over attempts). */
  private dropout = 0;
  private attempts = 0;
  /** Set by an attempt that failed on a full disk (the store's or a checkpoint's write). */
  private diskFull = false;
  /** What the released sums spent of the job's privacy (differential privacy on). */
  readonly privacy = new RdpAccountant();

  constructor(readonly config: JobConfig, private readonly deps: JobRunnerDeps) {
    this.task = getTask(config.task);
    this.taskChanged = deps.taskChanged ?? new Notifier();
    this.strategy = createStrategy(config.strategy, config.serverLearningRate > 0 ? { serverLearningRate: config.serverLearningRate } : {});
    this.rng = new Random(`${config.jobId}/${config.validationSeed}/selection`);
  }

  /**
   * Builds the model in its own process (checked against the budgets there: a spec at fault
   * throws InvalidFieldError) and draws the validation data; call once before {@link run}.
   * With a store, a job it already holds continues: the validation seed it ran with, its rounds,
   * the last round's checkpoint (digest-checked) and strategy state, and the scores rebuilt from
   * the recorded groups.
   */
  async init(): Promise<void> {
    const cfg = this.config;
    const store = this.deps.store;
    const identity = JSON.stringify({ task: cfg.task, model: cfg.model, modelSeed: cfg.modelSeed, strategy: cfg.strategy, serverLearningRate: cfg.serverLearningRate });
    const stored = store?.job(cfg.jobId) ?? null;
    const saved = stored ? (JSON.parse(stored.config) as { identity: string; validationSeed: string }) : null;
    if (saved && saved.identity !== identity) {
      throw new Error(`job ${cfg.jobId}: the store holds it with another task, model or strategy (${saved.identity}); use another --out or --job-id`);
    }
    const validationSeed = saved?.validationSeed ?? cfg.validationSeed;
    const { host, built } = await ModelHost.start(
      { task: cfg.task, spec: cfg.model, modelSeed: cfg.modelSeed, budget: this.deps.budget, batch: cfg.batchSize, validationSeed, validationSamples: cfg.validationSamples, backend: this.deps.modelBackend },
      { memoryLimitBytes: this.deps.modelMemoryBytes, jobId: cfg.jobId, log: this.deps.log, onFailure: (err) => this.modelFailed.abort(err) },
    );
    this.host = host;
    this.global = new GlobalModel(host, built.params);
    this.topology = built.topology;
    this.cost = built.cost;
    try {
      this.resume(identity, saved);
    } catch (err) {
      host.close();
      throw err;
    }
  }

  /** With a store: records a new job, or continues one it holds (rounds, checkpoint, scores). */
  private resume(identity: string, saved: { validationSeed: string } | null): void {
    const cfg = this.config;
    const store = this.deps.store;
    if (!store) return;
    if (!saved) {
      store.saveJob(cfg.jobId, JSON.stringify({ identity, validationSeed: cfg.validationSeed }), 'PENDING');
      return;
    }
    if (saved.validationSeed !== cfg.validationSeed) this.rng = new Random(`${cfg.jobId}/${saved.validationSeed}/selection/resumed`);
    const rounds = store.rounds<RoundRecord, ScoredGroup[]>(cfg.jobId);
    const last = rounds.at(-1);
    if (!last) return;
    const cp = store.readCheckpoint(last.checkpoint);
    if (cp.params.length !== this.paramCount) throw new Error(`checkpoint ${last.checkpoint}: expected ${this.paramCount} parameters, got ${cp.params.length}`);
    this.global.set(cp.params);
    this.strategy.restore(cp.strategy);
    for (const r of rounds) {
      this.history.push(r.record);
      if (r.record.dpNoiseMultiplier !== undefined) this.privacy.compose({ q: 1, noiseMultiplier: r.record.dpNoiseMultiplier });
      for (const g of r.groups) this.scoreboard.observe(g);
      this.groupHistory.add(r.groups.map((g) => g.members.map((m) => m.id)));
    }
    this.deps.ledger.updateScores();
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

  get paramCount(): number {
    return this.global.paramCount;
  }

  /** The global parameters trainers start round `round` from, as bytes with their digest. */
  globalModel(round: number): { bytes: Buffer; sha256: string } {
    if (round !== this.currentRound) throw new RoundNotFoundError(this.config.jobId, round, this.currentRound);
    return { bytes: this.global.bytes, sha256: this.global.sha256 };
  }

  /** Current global parameters (a copy). */
  params(): Float32Array {
    return new Float32Array(this.global.current);
  }

  /** Loss and task metric of the current global model on the validation data. */
  evaluateGlobal(): Promise<Evaluation> {
    return this.global.evaluate();
  }

  /** Writes the model with the current global parameters into `dir` (TF.js and ONNX, the ONNX file checked). */
  saveModel(dir: string): Promise<ModelSaved> {
    return this.global.save(dir);
  }

  /** `count` samples drawn like the validation data: raw, as model input, and what the current model predicts. */
  examples(count: number): Promise<ModelExample[]> {
    return this.global.examples(count);
  }

  /** Ends the model's process (after the job's model is written, or when it failed). */
  close(): void {
    this.host?.close();
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

  /**
   * Lets `nodeId` out of the current round when it cannot read any shard of its task (each one
   * `unreadable`, as it reported them failing their checks): it would only time out, and
   * be benched for the dataset node's fault.
   */
  release(nodeId: string, unreadable: (shard: ShardRef) => boolean): void {
    const r = this.current;
    const m = r?.member(nodeId);
    if (!r || !m || !r.isTaskActive(m.taskId) || !m.task.shards.every(unreadable)) return;
    this.deps.log.warn('trainer can read none of its shards; letting it out of the round', { nodeId, round: r.round });
    this.secure?.drop(nodeId);
    r.drop(nodeId);
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

  /**
   * Runs every round; resolves when the job is done, failed or `signal` aborted. Never rejects:
   * an error outside a round (the initial evaluation, the store) fails the job.
   */
  async run(signal: AbortSignal): Promise<JobState> {
    const cfg = this.config;
    try {
      const state = await this.runRounds(AbortSignal.any([signal, this.modelFailed.signal]));
      if (this.modelFailed.signal.aborted && !signal.aborted) throw this.modelFailed.signal.reason;
      return state;
    } catch (err) {
      this.state = 'FAILED';
      this.failure = `round ${this.currentRound}: ${(err as Error).message}`;
      this.deps.log.error('job failed', { jobId: cfg.jobId, round: this.currentRound, error: (err as Error).message });
      this.deps.progress(`job ${cfg.jobId}: failed at round ${this.currentRound}: ${(err as Error).message}`);
      // Its model process is done with: a model that failed it is never run again.
      this.close();
      try {
        this.deps.store?.saveJob(cfg.jobId, '', 'FAILED', this.failure);
      } catch {
        // the store is what failed; the state above is what callers see
      }
      return this.state;
    } finally {
      // A job's gauges describe a job in progress: once it ends its series go (its counters stay).
      const { metrics } = this.deps;
      for (const g of [metrics.currentRound, metrics.validationAccuracy, metrics.validationLoss]) g.remove({ job_id: cfg.jobId });
      for (const phase of PHASES_UNDER_WAY) metrics.roundPhase.remove({ job_id: cfg.jobId, phase });
    }
  }

  private async runRounds(signal: AbortSignal): Promise<JobState> {
    const { log, progress, metrics } = this.deps;
    const cfg = this.config;
    this.state = 'RUNNING';
    this.deps.store?.saveJob(cfg.jobId, '', 'RUNNING');
    metrics.currentRound.set({ job_id: cfg.jobId }, this.currentRound);
    if (this.resumedFrom >= cfg.rounds) progress(`job ${cfg.jobId}: already done (${this.resumedFrom} rounds recorded in this --out); use another --out or --job-id to train again`);
    else if (this.resumedFrom > 0) progress(`job ${cfg.jobId}: resumed after round ${this.resumedFrom} of ${cfg.rounds} from its checkpoint`);
    const initial = await this.global.evaluate();
    progress(`job ${cfg.jobId}: ${this.task.name}, ${this.paramCount.toLocaleString('en-US')} parameters, ${cfg.rounds} rounds, ${cfg.strategy}; initial val ${this.task.metricName} ${(initial.accuracy * 100).toFixed(1)}%`);
    while (this.currentRound <= cfg.rounds && !signal.aborted) {
      if (this.budgetSpent()) break;
      let done = false;
      for (let attempt = 1, waits = 0; attempt <= cfg.maxAttempts && !signal.aborted; attempt++) {
        done = await this.runRound(attempt, signal);
        if (done) break;
        if (this.diskFull) {
          // Not the round's fault: wait for space (growing pauses), and the attempt is not counted.
          this.diskFull = false;
          attempt--;
          await sleep(Math.min(30_000, 1000 * 2 ** waits++), signal);
        }
      }
      if (signal.aborted) break;
      if (!done) {
        this.state = 'FAILED';
        this.failure = `round ${this.currentRound} failed ${cfg.maxAttempts} times`;
        this.close();
        this.deps.store?.saveJob(cfg.jobId, '', 'FAILED', this.failure);
        progress(`job ${cfg.jobId}: round ${this.currentRound} failed ${cfg.maxAttempts} times; job failed`);
        log.error('job failed', { jobId: cfg.jobId, round: this.currentRound });
        return this.state;
      }
      this.currentRound++;
      metrics.currentRound.set({ job_id: cfg.jobId }, this.currentRound);
    }
    // A stop (SIGTERM, close) is not a cancellation of the job: it resumes on the next start.
    this.state = signal.aborted ? 'CANCELLED' : 'DONE';
    if (!signal.aborted) this.deps.store?.saveJob(cfg.jobId, '', 'DONE');
    return this.state;
  }

  /** Trainers that may be selected: live, and able to sign keys when aggregation is secure. */
  eligible(): TrainerRecord[] {
    const { registry } = this.deps;
    const live = registry.live().filter((r) => !registry.benched(r.nodeId));
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

  /** Live trainers a round needs before it starts. */
  get minLive(): number {
    return Math.max(this.config.minTrainers, this.config.secure?.minGroupSize ?? 1);
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
      // Shards two trainers found failing their checks are dealt to none: they are not data.
      const { ledger } = this.deps;
      const shards = this.deps.datasets().reduce((n, d) => n + d.shards.filter((s) => !ledger.shardFailedFor(null, d.nodeId, s.shardId)).length, 0);
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

  /**
   * One attempt at the current round: plan, collect, evaluate and score, aggregate and
   * checkpoint. True when the round completed and was recorded.
   */
  private async runRound(attempt: number, signal: AbortSignal): Promise<boolean> {
    const cfg = this.config;
    let open: OpenRound | null = null;
    try {
      // Scores are first-order loss decreases at this round's global model: -grad . update.
      const phases = new PhaseClock((now) => {
        for (const phase of PHASES_UNDER_WAY) this.deps.metrics.roundPhase.set({ job_id: cfg.jobId, phase }, phase === now ? 1 : 0);
      });
      const grad = await this.global.lossGradient();
      phases.lap('gradient');
      await this.waitForNodes(signal);
      if (signal.aborted) return false;
      const started = performance.now();
      phases.restart();
      const plan = this.plan(attempt);
      if (!plan) return await this.noGrouping(signal);
      if (plan.members.length < this.minLive && plan.unreadable.length > 0) return await this.unreadable(plan, signal);
      open = this.open(plan, attempt, grad);
      for (const m of plan.members) this.deps.ledger.dealt(m.nodeId, m.task.shards);
      phases.lap('plan');
      // Secure: each group's sum is evaluated and folded into the round's aggregate as soon as it
      // is unmasked, and its vector let go, so that the round holds one group's vector at a time.
      const round = open.round;
      const evaluated = new Map<string, EvaluatedSum>();
      let base: Evaluation | null = null;
      const onSum = async (r: GroupResult) => {
        evaluated.set(r.groupId, await phases.within('evaluate', async () => {
          base ??= await this.global.evaluate();
          return evaluateGroup(r, grad, this.global, base);
        }));
        await phases.within('aggregate', () => {
          round.aggregate.addWeighted(r.weightedSum, r.totalWeight, r.members.length);
        });
      };
      const collected = await collectRound(open, { registry: this.deps.registry, localEpochs: cfg.localEpochs, log: this.deps.log, signal, unitWeights: cfg.dp !== null, clipNorm: cfg.clipNorm, onSum });
      phases.lap('collect');
      const members = open.round.members();
      const missed = members.filter((m) => m.status !== 'reported').length / Math.max(1, members.length);
      this.dropout = this.attempts++ === 0 ? missed : 0.5 * this.dropout + 0.5 * missed;
      // Aggregated but not scored: a sum with a member that revealed a corrupted share (never
      // scored in its favour), and one a member away from a recent group (the relaxed
      // differencing rule). Sums the coordinator saw are remembered whether or not the round completes.
      const unscored = new Map<string, 'clash' | 'culprit'>();
      for (const r of open.secure ? collected.sums : []) {
        if (r.culprits.length) unscored.set([...r.members].sort().join(','), 'culprit');
        else if (this.groupHistory.clashes(r.members)) unscored.set([...r.members].sort().join(','), 'clash');
      }
      for (const r of collected.sums) if (r.culprits.length) this.deps.progress(`round ${this.currentRound}: ${r.culprits.join(', ')} revealed corrupted shares in group ${r.groupId}; its sum is rebuilt from the others' and not scored`);
      if (open.secure) this.groupHistory.add(collected.sums.map((r) => r.members));
      if (signal.aborted) return false;
      const shortfall = this.shortfall(open, collected);
      if (shortfall) {
        this.failRound(shortfall);
        return false;
      }
      return await this.completeRound(open, collected, evaluated, grad, started, unscored, phases);
    } catch (err) {
      // The model's process failed (its memory, a trap): the job fails now, whatever round.
      if (err instanceof ModelMemoryError || err instanceof ModelProcessError) throw err;
      this.deps.log.error('round failed', { jobId: cfg.jobId, round: this.currentRound, attempt, error: (err as Error).message });
      if (isDiskFull(err)) {
        this.diskFull = true;
        this.failRound(`the disk holding the store is full (${(err as Error).message}); nothing of this attempt is kept; waiting for space`);
      } else {
        this.failRound(`failed: ${(err as Error).message}; retrying`);
      }
      return false;
    } finally {
      if (open && open.round.phase !== 'DONE') open.round.finish(false);
      open?.secure?.close();
    }
  }

  /**
   * The plan phase among the trainers free now. From here to the claim of the cohort (`open`)
   * nothing awaits: the trainers seen free are still free when they are chosen.
   */
  private plan(attempt: number): RoundPlan | null {
    this.deps.ledger.countRound();
    const free = this.available();
    // Over-provisioned by the share of members that recently missed the deadline.
    const cohort = Math.ceil(this.config.cohort / Math.max(0.2, 1 - this.dropout));
    return planRound({
      config: cohort === this.config.cohort ? this.config : { ...this.config, cohort }, round: this.currentRound, attempt, trainers: free.trainers, cap: free.cap, datasets: this.deps.datasets(),
      model: { topologyJson: this.topology, numParams: this.paramCount, paramsSha256: this.global.sha256 },
      rng: this.rng, history: this.groupHistory, leaseSigner: this.deps.leaseSigner,
      shardFailed: (trainer, s) => this.deps.ledger.shardFailedFor(trainer, s.datasetNodeId, s.shardId),
    });
  }

  /** No grouping of the cohort respects the differencing rule: a pause, then a fresh cohort. */
  private async noGrouping(signal: AbortSignal): Promise<false> {
    this.deps.progress(`round ${this.currentRound}: no grouping of the cohort avoids one differing by a single member from a recent group; retrying with a fresh cohort`);
    await sleep(1000, signal);
    return false;
  }

  /**
   * Too few of the cohort were dealt a shard they can read (each reported every other one failing
   * its checks): a pause, then a fresh cohort.
   */
  private async unreadable(plan: RoundPlan, signal: AbortSignal): Promise<false> {
    this.failRound(`only ${plan.members.length} trainers can be dealt a shard they did not report failing its checks (${plan.unreadable.length} left out); need ${this.minLive}, retrying`);
    await sleep(1000, signal);
    return false;
  }

  /** Claims the plan's cohort: the round (and its groups) that trainers' calls now reach. */
  private open(plan: RoundPlan, attempt: number, grad: Float32Array): OpenRound {
    const cfg = this.config;
    const open = openRound(plan, {
      jobId: cfg.jobId, round: this.currentRound, attempt, paramCount: this.paramCount, grad, log: this.deps.log,
      stageTimeoutMs: cfg.secure?.stageTimeoutMs ?? 0, unmaskTimeoutMs: cfg.secure?.unmaskTimeoutMs ?? 0,
      maskPool: this.deps.maskPool, onBeforeUnmask: this.deps.onBeforeUnmask, sumStorage: this.deps.sumStorage,
    });
    this.secure?.close();
    this.current = open.round;
    this.secure = open.secure;
    this.announce(open, attempt);
    return open;
  }

  /** Why the collected updates cannot make a round (too few, or no secure group unmasked); null if they can. */
  private shortfall(open: OpenRound, collected: Collected): string | null {
    const { reporters, sums, failed, outcome } = collected;
    const need = this.config.minTrainers;
    if (reporters.size >= need && (!open.secure || sums.length > 0)) return null;
    const members = open.round.members().length;
    const what = open.secure ? `${reporters.size} of ${members} updates in ${sums.length} unmasked groups (${failed.length} dropped)` : `only ${reporters.size} of ${members} updates`;
    return `${what} (${outcome.reason}); need ${need}, retrying`;
  }

  /** Prints and logs a round that starts, and wakes trainers waiting for a task. */
  private announce(open: OpenRound, attempt: number): void {
    const cfg = this.config;
    const members = open.round.members();
    const samples = members.reduce((n, m) => n + m.task.shards.reduce((k, s) => k + s.numSamples, 0), 0);
    const groups = open.secure?.groups;
    const groupNote = groups ? `, secure aggregation in ${groups.length} groups of ${groups.map((g) => g.params.members.length).join('+')}` : '';
    this.deps.progress(`round ${this.currentRound}/${cfg.rounds}${attempt > 1 ? ` (attempt ${attempt})` : ''}: ${members.length} trainers, ${samples} samples${groupNote}, deadline ${cfg.roundTimeoutMs / 1000}s`);
    this.deps.log.info('round started', { jobId: cfg.jobId, round: this.currentRound, attempt, cohort: members.map((m) => m.nodeId) });
    this.taskChanged.notify();
  }

  /** Counts and prints a failed attempt. */
  private failRound(why: string): void {
    this.deps.metrics.roundsTotal.inc({ job_id: this.config.jobId, result: 'failed' });
    this.deps.progress(`round ${this.currentRound}: ${why}`);
  }

  /**
   * Evaluate and score, aggregate and checkpoint: the round's sums become the next global model,
   * which is recorded before anything of the round is kept. A throw leaves the global model,
   * the strategy's state and the scores as they were.
   */
  private async completeRound(open: OpenRound, collected: Collected, evaluated: ReadonlyMap<string, EvaluatedSum>, grad: Float32Array, started: number, unscored: ReadonlyMap<string, 'clash' | 'culprit'>, phases: PhaseClock): Promise<boolean> {
    const cfg = this.config;
    const { round, secure } = open;
    const { reporters, outcome } = collected;
    // Secure groups were evaluated as they were unmasked (runRound); plaintext updates as they arrived.
    const sums = secure ? collected.sums.map((r) => evaluated.get(r.groupId)!) : plainSums(open.plainScores, reporters);
    const aggregated = aggregateRound(this.strategy, this.global.current, round.aggregate);
    if (!aggregated) {
      this.failRound('the aggregate is not finite (training diverged; lower --lr or --server-lr); the global model is kept, retrying');
      this.deps.log.warn('non-finite aggregate refused', { round: this.currentRound });
      return false;
    }
    phases.lap('aggregate');
    const scored = scoreGroups(sums, grad, round, cfg.taskWeight, this.deps.log)
      .map((g) => (unscored.has(g.members.map((m) => m.id).sort().join(',')) ? { ...g, unscored: true } : g));
    const clashes = [...unscored.values()].filter((why) => why === 'clash').length;
    if (clashes) this.deps.progress(`round ${this.currentRound}: ${clashes} of ${scored.length} group(s) one member away from a recent group: aggregated, not scored`);
    // The unmasked sums are out: what they spent of the job's privacy counts from here on.
    const dpNoise = cfg.dp && secure ? this.releasedNoise(open, collected) : undefined;
    if (dpNoise !== undefined) this.privacy.compose({ q: 1, noiseMultiplier: dpNoise });
    const previous = this.global.current;
    this.global.set(aggregated.next);
    let result: RoundRecord;
    try {
      const ev = await this.global.evaluate();
      phases.lap('validate');
      const reported = round.members().filter((m) => reporters.has(m.nodeId));
      const samples = reported.reduce((n, m) => n + m.numSamples, 0);
      result = {
        round: this.currentRound, participants: reporters.size, cohort: round.members().length, samples,
        trainLoss: reported.reduce((s, m) => s + m.trainLoss * m.numSamples, 0) / Math.max(samples, 1),
        valLoss: ev.loss, valAccuracy: ev.accuracy, durationSeconds: (performance.now() - started) / 1000, attempt: round.attempt,
        endedBy: outcome.reason, reporters: reported.map((m) => m.nodeId), groups: collected.sums.length, groupsFailed: collected.failed.length,
        datasets: [...new Set(reported.flatMap((m) => m.task.shards.map((sh) => sh.datasetNodeId)))].sort(),
        ...(ev.meanError !== undefined ? { valMeanError: ev.meanError } : {}),
        valOrderF1: ev.orderF1 ?? 0,
        ...(dpNoise !== undefined ? { dpNoiseMultiplier: dpNoise, epsilon: this.privacy.epsilon(cfg.dp!.delta) } : {}),
      };
      const { checkpoint: _notYet, ...recorded } = phases.seconds();
      result.phaseSeconds = recorded;
      if (this.deps.store) {
        const nodes = this.deps.registry.snapshot().map((record) => ({ nodeId: record.nodeId, role: 'trainer', record }));
        checkpointRound(this.deps.store, { jobId: cfg.jobId, round: this.currentRound, record: result, groups: scored, params: aggregated.next, strategy: this.strategy, nodes });
      }
      phases.lap('checkpoint');
    } catch (err) {
      this.global.set(previous);
      aggregated.undo();
      throw err;
    }
    // Kept: the scores, the group history, the record.
    const timed = phases.seconds();
    for (const [phase, secs] of Object.entries(timed)) this.deps.metrics.roundPhaseSeconds.observe({ job_id: cfg.jobId, phase }, secs);
    this.deps.log.info('round phases', { jobId: cfg.jobId, round: result.round, seconds: timed });
    for (const g of scored) this.scoreboard.observe(g);
    this.deps.ledger.updateScores();
    this.history.push(result);
    round.finish(true);
    this.report(result);
    try {
      await this.deps.onRound?.(result);
    } catch (err) {
      // The round is recorded (store, history): what failed is a copy of it (history.json, say).
      this.deps.log.error('after-round hook failed; the round is kept', { jobId: this.config.jobId, round: result.round, error: (err as Error).message });
    }
    return true;
  }

  /**
   * The noise multiplier the round's released group sums carried at the least: a group whose
   * members did not all send a masked input holds only their shares of the noise.
   */
  private releasedNoise(open: OpenRound, collected: Collected): number {
    const sigma = this.config.dp!.noiseMultiplier;
    const planned = new Map((open.secure?.groups ?? []).map((g) => [g.params.groupId, g.params.members.length]));
    return Math.min(...collected.sums.map((g) => sigma * Math.sqrt(g.members.length / (planned.get(g.groupId) ?? g.members.length))));
  }

  /** Whether another round would take the job past its privacy budget (then it ends, said why). */
  private budgetSpent(): boolean {
    const dp = this.config.dp;
    if (!dp || dp.epsilonBudget <= 0) return false;
    const next = this.privacy.epsilonAfter({ q: 1, noiseMultiplier: dp.noiseMultiplier }, dp.delta);
    if (next <= dp.epsilonBudget) return false;
    const spent = this.privacy.epsilon(dp.delta);
    this.deps.progress(`job ${this.config.jobId}: privacy budget reached after ${this.privacy.rounds} rounds: epsilon ${spent.toFixed(2)} at delta ${dp.delta} (another round would make it ${next.toFixed(2)}, the budget is ${dp.epsilonBudget})`);
    this.deps.log.info('privacy budget reached', { jobId: this.config.jobId, rounds: this.privacy.rounds, epsilon: spent, next, budget: dp.epsilonBudget });
    return true;
  }

  /** Metrics and the progress line of a completed round. */
  private report(r: RoundRecord): void {
    const { metrics } = this.deps;
    const cfg = this.config;
    metrics.roundsTotal.inc({ job_id: cfg.jobId, result: 'completed' });
    metrics.roundDuration.observe({ job_id: cfg.jobId }, r.durationSeconds);
    metrics.validationAccuracy.set({ job_id: cfg.jobId }, r.valAccuracy);
    metrics.validationLoss.set({ job_id: cfg.jobId }, r.valLoss);
    const groupsText = r.groups + r.groupsFailed > 0 ? ` in ${r.groups} secure group${r.groups === 1 ? '' : 's'}${r.groupsFailed ? ` (${r.groupsFailed} dropped)` : ''}` : '';
    const meanError = r.valMeanError !== undefined ? `, mean keypoint error ${(r.valMeanError * this.task.inputShape[1]!).toFixed(2)} px`
      : this.task.head.kind === 'classes' && this.task.head.steps ? `, out-of-order F1 ${(r.valOrderF1 ?? 0).toFixed(3)}` : '';
    const privacy = r.epsilon !== undefined ? `, epsilon ${r.epsilon.toFixed(2)} at delta ${cfg.dp!.delta}` : '';
    this.deps.progress(`round ${r.round}/${cfg.rounds} done in ${r.durationSeconds.toFixed(1)}s: ${r.participants}/${r.cohort} trainers${groupsText}, train loss ${r.trainLoss.toFixed(3)}, val loss ${r.valLoss.toFixed(3)}, val ${this.task.metricName} ${(r.valAccuracy * 100).toFixed(1)}%${meanError}${privacy}${r.endedBy === 'all-reported' ? '' : ` (${r.endedBy})`}`);
  }
}

/** True for a write that failed for want of space: a checkpoint file's (ENOSPC) or SQLite's (SQLITE_FULL). */
function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'SQLITE_FULL' || code === 'EDQUOT';
}

/** What a round can be doing: one of its phases, or waiting for trainers before its plan. */
type PhaseUnderWay = RoundPhase | 'waiting';
const PHASES_UNDER_WAY: readonly PhaseUnderWay[] = ['waiting', ...ROUND_PHASES];
/** The phase that follows each lap (after the gradient, the round waits for trainers). */
const NEXT_PHASE: Record<RoundPhase, PhaseUnderWay | null> = { gradient: 'waiting', plan: 'collect', collect: 'aggregate', evaluate: 'aggregate', aggregate: 'validate', validate: 'checkpoint', checkpoint: null };

/**
 * Times a round's phases: each lap ends the phase named and starts the next. `onPhase` hears
 * the phase under way whenever it changes (null once the round is over).
 */
class PhaseClock {
  private readonly laps = new Map<RoundPhase, number>();
  private last = performance.now();
  private base: PhaseUnderWay | null = 'gradient';
  /** Phases run `within` another, by how many runs of each are under way (groups overlap). */
  private readonly inner = new Map<RoundPhase, number>();

  constructor(private readonly onPhase: (phase: PhaseUnderWay | null) => void = () => {}) {
    onPhase(this.base);
  }

  /** The phase under way: an inner one (evaluate before aggregate) over the lapped one. */
  private announce(): void {
    this.onPhase((['evaluate', 'aggregate'] as const).find((p) => (this.inner.get(p) ?? 0) > 0) ?? this.base);
  }

  /** Starts timing afresh (time before it is no phase's, such as waiting for trainers); the plan is next. */
  restart(): void {
    this.last = performance.now();
    this.base = 'plan';
    this.announce();
  }

  lap(phase: RoundPhase): void {
    const now = performance.now();
    this.laps.set(phase, (this.laps.get(phase) ?? 0) + (now - this.last) / 1000);
    this.last = now;
    this.base = NEXT_PHASE[phase];
    this.announce();
  }

  /**
   * Runs `fn` inside the phase under way and counts its time as `phase` instead (a group's sum
   * evaluated and aggregated while others still collect): the phases still add up to the round.
   */
  async within<T>(phase: RoundPhase, fn: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    this.inner.set(phase, (this.inner.get(phase) ?? 0) + 1);
    this.announce();
    try {
      return await fn();
    } finally {
      this.inner.set(phase, this.inner.get(phase)! - 1);
      this.announce();
      const ms = performance.now() - t0;
      this.laps.set(phase, (this.laps.get(phase) ?? 0) + ms / 1000);
      this.last += ms;
    }
  }

  /** Seconds by phase so far, 0 for a phase not lapped yet. */
  seconds(): Record<RoundPhase, number> {
    return Object.fromEntries(ROUND_PHASES.map((p) => [p, +(this.laps.get(p) ?? 0).toFixed(4)])) as Record<RoundPhase, number>;
  }
}
