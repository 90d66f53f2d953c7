/**
 * The coordinator's jobs: the built-in one from its flags, and the ones researchers submit.
 * Each runs its own rounds; they share the trainers by the fair-share scheduler
 * (`fair-share.ts`).
 *
 * Every job is in the store with its whole config: a restarted coordinator resumes the pending
 * and running ones from their last completed round, and lists the ended ones with their history.
 * A job that ends DONE leaves its model as TF.js files with a model card (task, data, rounds,
 * metrics, digests) in its folder: `<out>/model/` for the built-in job, `<out>/jobs/<id>/model/`
 * for submitted ones.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeJsonFile, Notifier } from '../util/index.js';
import { ONNX_FILE, PORTABLE_LAYERS_FILE, precheckSpec, type ModelCost } from '../model/contract.js';
import { getTask } from '../tasks/index.js';
import { sha256, type JobInfo, type ShardRef, type Task } from '../wire/index.js';
import { JobExistsError, JobNotFoundError, JobStateError, NoSecureRoundError, TaskNotFoundError, InvalidFieldError, TooManyJobsError } from '../errors.js';
import { fairShare } from './fair-share.js';
import { modelCard } from './model-card.js';
import { JobRunner, type Availability, type JobRunnerDeps, type JobState, type RoundRecord } from './job-runner.js';
import type { JobConfig } from './job-config.js';
import type { NodeLedger } from './ledger.js';
import type { CoordinatorStore } from '../store/index.js';

/** One job the coordinator holds. */
export interface ManagedJob {
  config: JobConfig;
  description: string;
  builtin: boolean;
  /** SS58 address of the submitter (empty: the built-in job). */
  submittedBy: string;
  submittedMs: number;
  /** Folder of its history, summary and model. */
  dir: string;
  /** Running (or run in this process); null for a job that ended before this process started. */
  runner: JobRunner | null;
  cost: ModelCost | null;
  /** State, history and failure of a job without a runner. */
  endedState: JobState | null;
  endedFailure: string;
  endedHistory: RoundRecord[];
  /** Resolves with the job's final state once its model and card are written. */
  done: Promise<JobState>;
  abort: AbortController;
  cancelled: boolean;
}

/** What the jobs need from their process. */
export interface JobManagerDeps extends Omit<JobRunnerDeps, 'onRound' | 'ledger' | 'available' | 'taskChanged' | 'progress'> {
  ledger: NodeLedger;
  store: CoordinatorStore;
  out: string;
  /** Most jobs pending or running at once; a new submission beyond is refused (default: no limit). */
  maxActiveJobs?: number;
  progress: (line: string) => void;
  /** After any job's completed round (history files, weights on chain). */
  onRound?: (job: ManagedJob, result: RoundRecord) => Promise<void> | void;
}

const ENDED: readonly string[] = ['DONE', 'FAILED', 'CANCELLED'];

/** The files a finished job's model may be made of, in download order (the card comes last). */
export const MODEL_FILES = ['model.json', 'weights.bin', PORTABLE_LAYERS_FILE, ONNX_FILE] as const;
/** The download formats and the files of each. */
export const MODEL_FORMATS = {
  tfjs: ['model.json', 'weights.bin', PORTABLE_LAYERS_FILE],
  onnx: [ONNX_FILE],
  all: MODEL_FILES,
} as const satisfies Record<string, readonly string[]>;
export type ModelFormat = keyof typeof MODEL_FORMATS;
/** The model card beside them. */
export const MODEL_CARD_FILE = 'model-card.json';


export class JobManager {
  private readonly jobs = new Map<string, ManagedJob>();
  /** One long poll for trainers serves every job. */
  private readonly taskChanged = new Notifier();
  /** Jobs whose model is being built (their id is taken meanwhile). */
  private readonly starting = new Set<string>();
  private closed = false;

  constructor(private readonly deps: JobManagerDeps) {}

  /** The folder a job's files go to. */
  dirOf(jobId: string, builtin: boolean): string {
    return builtin ? this.deps.out : path.join(this.deps.out, 'jobs', jobId);
  }

  /**
   * Checks the job's model against the budgets and the task, builds it in its own process, and
   * starts the job (continuing it when the store holds its rounds). A submitted job whose id is
   * taken is refused.
   */
  async start(config: JobConfig, opts: { builtin: boolean; description?: string; submittedBy?: string; resume?: boolean }): Promise<ManagedJob> {
    if (this.closed) throw new JobStateError(config.jobId, 'a coordinator that is running', 'one shutting down');
    if (this.jobs.has(config.jobId) || this.starting.has(config.jobId) || (!opts.builtin && !opts.resume && this.deps.store.job(config.jobId))) throw new JobExistsError(config.jobId);
    // Each job holds a model process: a new one past the limit is refused (resumed ones are not).
    const max = this.deps.maxActiveJobs ?? Infinity;
    if (!opts.resume && this.running().length + this.starting.size >= max) throw new TooManyJobsError(max);
    // What can be refused without TF.js is refused before a process starts; a `layers`
    // topology's cost is worked out in the job's model process, before its model is built.
    const task = getTask(config.task);
    precheckSpec(config.model, task.inputShape, task.head, this.deps.budget);
    this.starting.add(config.jobId);
    try {
      return await this.launch(config, opts);
    } finally {
      this.starting.delete(config.jobId);
    }
  }

  private async launch(config: JobConfig, opts: { builtin: boolean; description?: string; submittedBy?: string; resume?: boolean }): Promise<ManagedJob> {
    const dir = this.dirOf(config.jobId, opts.builtin);
    const tag = opts.builtin ? '' : `[${config.jobId}] `;
    const job: ManagedJob = {
      config, description: opts.description ?? '', builtin: opts.builtin, submittedBy: opts.submittedBy ?? '', submittedMs: Date.now(), dir,
      runner: null, cost: null, endedState: null, endedFailure: '', endedHistory: [], done: Promise.resolve('PENDING'), abort: new AbortController(), cancelled: false,
    };
    const runner = new JobRunner(config, {
      ...this.deps,
      datasets: () => this.deps.datasets().filter((d) => d.task === config.task),
      progress: (line) => this.deps.progress(`${tag}${line}`),
      taskChanged: this.taskChanged,
      available: (j) => this.available(j),
      onRound: async (r) => {
        await writeJsonFile(path.join(dir, 'history.json'), { jobId: config.jobId, rounds: runner.history });
        await this.deps.onRound?.(job, r);
      },
    });
    await runner.init();
    if (this.closed) {
      runner.close();
      throw new JobStateError(config.jobId, 'a coordinator that is running', 'one shutting down');
    }
    job.runner = runner;
    job.cost = runner.cost;
    const stored = this.deps.store.jobs().find((j) => j.jobId === config.jobId);
    if (stored && !stored.spec) this.deps.store.saveSpec(config.jobId, JSON.stringify(config), opts.builtin, job.description, job.submittedBy);
    if (stored) job.submittedMs = stored.createdMs;
    if (stored?.description) job.description = stored.description;
    if (stored?.submittedBy) job.submittedBy = stored.submittedBy;
    this.jobs.set(config.jobId, job);
    job.done = runner.run(job.abort.signal).then((state) => this.finished(job, state)).catch((err: Error) => {
      // Writing the model or its card failed (a full disk, say): the rounds are kept, and the
      // job, which is DONE in the store, writes its model again when the coordinator restarts.
      this.deps.log.error('job model could not be written', { jobId: config.jobId, error: err.message });
      this.deps.progress(`${tag}job ${config.jobId}: its model could not be written (${err.message}); a restart writes it from the last checkpoint`);
      runner.state = 'FAILED';
      return 'FAILED' as const;
    });
    return job;
  }

  /**
   * Brings back the submitted jobs of an earlier run: pending and running ones continue from
   * their last completed round; ended ones are listed with their history.
   */
  async resume(): Promise<void> {
    for (const s of this.deps.store.jobs()) {
      if (s.builtin || !s.spec || this.jobs.has(s.jobId)) continue;
      const config = JSON.parse(s.spec) as JobConfig;
      // A job that ended DONE just before a crash may not have written its model yet: it is
      // started again, finds every round recorded, and writes the model from its checkpoint.
      const modelMissing = s.state === 'DONE' && !fs.existsSync(path.join(this.dirOf(s.jobId, false), 'model', 'model-card.json'));
      if (ENDED.includes(s.state) && !modelMissing) {
        const history = this.deps.store.rounds<RoundRecord, unknown>(s.jobId).map((r) => r.record);
        this.jobs.set(s.jobId, {
          config, description: s.description, builtin: false, submittedBy: s.submittedBy, submittedMs: s.createdMs, dir: this.dirOf(s.jobId, false),
          runner: null, cost: null, endedState: s.state as JobState, endedFailure: s.failure, endedHistory: history, done: Promise.resolve(s.state as JobState),
          abort: new AbortController(), cancelled: s.state === 'CANCELLED',
        });
        continue;
      }
      try {
        await this.start(config, { builtin: false, resume: true });
        this.deps.progress(`[${s.jobId}] resumed from the store`);
      } catch (err) {
        this.deps.log.error('stored job could not be resumed', { jobId: s.jobId, error: (err as Error).message });
        this.deps.store.saveJob(s.jobId, '', 'FAILED', `it could not be resumed: ${(err as Error).message}`);
      }
    }
  }

  /** After a job's run ends: its model and card when DONE, its state when cancelled. */
  private async finished(job: ManagedJob, state: JobState): Promise<JobState> {
    const runner = job.runner!;
    try {
      return await this.wrapUp(job, state);
    } finally {
      // The model's process is done with, however the job ended.
      runner.close();
    }
  }

  private async wrapUp(job: ManagedJob, state: JobState): Promise<JobState> {
    const runner = job.runner!;
    if (job.cancelled) {
      runner.state = 'CANCELLED';
      this.deps.progress(`${job.builtin ? '' : `[${job.config.jobId}] `}job ${job.config.jobId} cancelled after ${runner.history.length} rounds`);
      return 'CANCELLED';
    }
    if (state !== 'DONE') return state;
    const modelDir = path.join(job.dir, 'model');
    const saved = await runner.saveModel(modelDir);
    await writeJsonFile(path.join(modelDir, 'model-card.json'), await modelCard(job, modelDir, saved));
    const last = runner.history.at(-1);
    await writeJsonFile(path.join(job.dir, 'summary.json'), {
      jobId: job.config.jobId, task: runner.task.name, state, rounds: runner.history.length,
      parameters: runner.paramCount, finalValAccuracy: last?.valAccuracy ?? null, finalValLoss: last?.valLoss ?? null,
      classes: runner.task.classes, model: modelDir,
    });
    return state;
  }

  /** The job called `jobId`. */
  get(jobId: string): ManagedJob {
    const j = this.jobs.get(jobId);
    if (!j) throw new JobNotFoundError(jobId);
    return j;
  }

  /** Every job, in submission order. */
  list(): ManagedJob[] {
    return [...this.jobs.values()].sort((a, b) => a.submittedMs - b.submittedMs);
  }

  /** Jobs with a runner that has not ended. */
  private running(): JobRunner[] {
    return [...this.jobs.values()].flatMap((j) => (j.runner && !ENDED.includes(j.runner.state) ? [j.runner] : []));
  }

  stateOf(j: ManagedJob): JobState {
    return j.runner?.state ?? j.endedState ?? 'PENDING';
  }

  historyOf(j: ManagedJob): RoundRecord[] {
    return j.runner?.history ?? j.endedHistory;
  }

  /** Stops a pending or running job for good (a restart does not bring it back). */
  async cancel(jobId: string): Promise<ManagedJob> {
    const j = this.get(jobId);
    const state = this.stateOf(j);
    if (ENDED.includes(state)) throw new JobStateError(jobId, 'a PENDING or RUNNING job', state);
    j.cancelled = true;
    this.deps.store.saveJob(jobId, '', 'CANCELLED');
    j.abort.abort(new Error('cancelled'));
    await j.done;
    this.taskChanged.notify();
    return j;
  }

  /** The trainers `job` may select now: its fair share of those free (`fair-share.ts`). */
  available(job: JobRunner): Availability {
    return fairShare(job, this.running());
  }

  /** The task assigned to `nodeId` in any job's running round, waiting at most `ms`. */
  async waitForTask(nodeId: string, ms: number, signal: AbortSignal): Promise<Task | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      for (const r of this.running()) {
        const t = r.taskFor(nodeId);
        if (t) return t;
      }
      const left = deadline - Date.now();
      if (left <= 0 || signal.aborted) return null;
      await this.taskChanged.wait(left, signal);
    }
  }

  /** Lets `nodeId` out of any running round in which it can read none of its shards ({@link JobRunner.release}). */
  release(nodeId: string, unreadable: (shard: ShardRef) => boolean): void {
    for (const r of this.running()) r.release(nodeId, unreadable);
  }

  /** True while `taskId` is in some job's open round, its update still wanted or already in (`Round.isTaskInRound`). */
  isTaskInRound(taskId: string): boolean {
    return taskId !== '' && this.running().some((r) => r.current?.isTaskInRound(taskId) === true);
  }

  /** The running job whose id is `jobId`. */
  runner(jobId: string): JobRunner {
    const r = this.jobs.get(jobId)?.runner;
    if (!r) throw new JobNotFoundError(jobId);
    return r;
  }

  /** The job whose running secure round gave `nodeId` the task `taskId`. */
  secureRunnerFor(nodeId: string, taskId: string): JobRunner {
    const running = this.running();
    const r = running.find((x) => x.current?.member(nodeId)?.taskId === taskId);
    if (r?.secure) return r;
    if (!running.some((x) => x.secure)) throw new NoSecureRoundError(running.map((x) => x.config.jobId).join(', ') || 'none');
    throw new TaskNotFoundError(taskId, nodeId);
  }

  /** The wire summary of a job. */
  info(j: ManagedJob): JobInfo {
    const history = this.historyOf(j);
    const last = history.at(-1);
    const metric = j.config.metric;
    const value = !last ? 0 : metric === 'loss' ? last.valLoss : metric === 'mean_error' ? (last.valMeanError ?? 0) : last.valAccuracy;
    return {
      jobId: j.config.jobId, task: j.config.task, state: this.stateOf(j), priority: j.config.priority, taskWeight: j.config.taskWeight,
      roundsTotal: j.config.rounds, roundsDone: history.length, phase: j.runner?.waiting ? 'WAITING' : j.runner?.current?.phase ?? 'NONE', description: j.description,
      parameters: j.cost?.params ?? j.runner?.paramCount ?? 0, flops: j.cost?.flops ?? 0, metric, metricValue: value,
      submittedUnixMs: j.submittedMs, submittedBy: j.submittedBy, builtin: j.builtin, trainers: j.runner?.busyTrainers().length ?? 0,
      failure: j.runner?.failure ?? j.endedFailure,
    };
  }

  /**
   * A finished job's model files in `format`, digest-checked against its card: of the files the
   * card lists (model.json, weights.bin, aq-layers.js for a model with the project's layers,
   * model.onnx), those of the format, then the card.
   */
  modelFiles(jobId: string, format: ModelFormat = 'all'): { name: string; bytes: Buffer }[] {
    const j = this.get(jobId);
    const state = this.stateOf(j);
    if (state !== 'DONE') throw new JobStateError(jobId, 'a DONE job (its model is written when the last round completes)', state);
    const dir = path.join(j.dir, 'model');
    const read = (name: string) => {
      try {
        return { name, bytes: fs.readFileSync(path.join(dir, name)) };
      } catch {
        throw new JobStateError(jobId, `its model file ${name} in ${dir}`, 'a missing file');
      }
    };
    const cardFile = read(MODEL_CARD_FILE);
    const listed = (JSON.parse(cardFile.bytes.toString('utf8')) as { files?: Record<string, string> }).files ?? {};
    const wanted: readonly string[] = MODEL_FORMATS[format];
    const out = wanted.filter((name) => name in listed).map(read);
    for (const f of out) {
      if (listed[f.name] !== sha256(f.bytes).toString('hex')) throw new InvalidFieldError(`${dir}/${f.name}`, `the digest its model card lists (${listed[f.name]})`, sha256(f.bytes).toString('hex'));
    }
    const needed = format === 'onnx' ? [ONNX_FILE] : ['model.json', 'weights.bin'];
    if (!needed.every((n) => n in listed)) {
      throw new JobStateError(jobId, `a model card that lists ${needed.join(' and ')} (${dir})`, `one that lists ${Object.keys(listed).join(', ') || 'nothing'}`);
    }
    return [...out, cardFile];
  }

  /** Resolves once no job is pending or running. */
  async idle(): Promise<void> {
    for (let r = this.running(); r.length > 0; r = this.running()) {
      await Promise.race([...this.jobs.values()].filter((j) => j.runner && r.includes(j.runner)).map((j) => j.done.catch(() => undefined)));
    }
  }

  /** Stops every job (they resume on the next start) and waits for them. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.jobs.values()) j.abort.abort(new Error('coordinator stopping'));
    await Promise.all([...this.jobs.values()].map((j) => j.done.catch(() => undefined)));
  }
}
