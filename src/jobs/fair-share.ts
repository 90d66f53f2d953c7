/**
 * The fair-share scheduler of a coordinator's jobs. Jobs share the trainers: a trainer is in at
 * most one job's round at a time, and each job may hold at most its share of the eligible
 * trainers, in proportion to priority x task weight among the running jobs that have data to
 * train on (never fewer than its round needs). A low-priority job still progresses and a
 * high-priority one gets most of the fleet; a job waiting for a dataset node of its task holds no
 * share.
 */
import type { TrainerRecord } from '../rounds/index.js';
import type { Availability } from './job-runner.js';

/** What the scheduler reads of a job. */
export interface ShareHolder {
  readonly config: { priority: number; taskWeight: number };
  /** Trainers the job could use (live; able to sign keys when it is secure). */
  eligible(): TrainerRecord[];
  /** Trainers its running round holds. */
  busyTrainers(): string[];
  /** True when a live dataset node serves its task. */
  hasData(): boolean;
  /** Live trainers its round needs before it starts. */
  readonly minLive: number;
}

/**
 * The trainers `job` may select now among `running` jobs: eligible for it, not in another job's
 * round, and at most its share. `shared` says whether other jobs hold shares now: while none do,
 * the cap is merely the number live, and says nothing of the cohort the job could get by waiting.
 */
export function fairShare(job: ShareHolder, running: readonly ShareHolder[]): Availability {
  const eligible = job.eligible();
  const busy = new Set(running.filter((r) => r !== job).flatMap((r) => r.busyTrainers()));
  const weight = (r: ShareHolder) => r.config.priority * r.config.taskWeight;
  const total = running.filter((r) => r === job || r.hasData()).reduce((s, r) => s + weight(r), 0);
  const share = total > 0 ? Math.floor((eligible.length * weight(job)) / total) : eligible.length;
  return { trainers: eligible.filter((t) => !busy.has(t.nodeId)), cap: Math.max(job.minLive, share), shared: total > weight(job) };
}
