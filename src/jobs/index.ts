/**
 * A coordinator's jobs: each job's round loop (`job-runner.ts`), the manager that starts,
 * resumes, cancels and lists them (`job-manager.ts`), the fair-share scheduler that shares the
 * trainers among them (`fair-share.ts`), what is known of nodes across jobs (`ledger.ts`), a
 * job's settings and their one resolution (`job-config.ts`), a researcher's spec read into them
 * (`job-spec.ts`), and the model card of a finished job.
 */
export { fairShare, type ShareHolder } from './fair-share.js';
export { JOB_OPTIONS, JOB_SPEC_FIELDS, resolveJobConfig, taskMetrics, type JobConfig, type JobIdentity, type JobOption, type SecureAggregationConfig, type SettingNames, SPEC_FIELD_OF } from './job-config.js';
export { JobManager, MODEL_FILES, MODEL_FORMATS, type JobManagerDeps, type ManagedJob, type ModelFormat } from './job-manager.js';
export { JobRunner, type Availability, type JobRunnerDeps, type JobState, type RoundRecord } from './job-runner.js';
export { NodeLedger } from './ledger.js';
export { modelCard, type CardSource } from './model-card.js';
export { jobConfigFrom, MAX_SPEC_BYTES, parseJobSpec, type ParsedJobSpec } from './job-spec.js';
