/**
 * A job's resolved settings: what to train and how. The coordinator's flags resolve into one for
 * its built-in job (`coordinator/config.ts`), a researcher's spec into one for each submitted job
 * (`coordinator/job-spec.ts`); the round loop reads nothing else.
 */
import type { ModelSpec } from '../model/index.js';

/** One job: what to train and how. */
export interface JobConfig {
  jobId: string;
  task: string;
  model: ModelSpec;
  /** Weight of this job's scored groups (the task's difficulty unless set). */
  taskWeight: number;
  rounds: number;
  cohort: number;
  minTrainers: number;
  localEpochs: number;
  batchSize: number;
  learningRate: number;
  optimizer: 'adam' | 'sgd';
  clipNorm: number;
  strategy: string;
  serverLearningRate: number;
  shardsPerRound: number;
  roundTimeoutMs: number;
  maxAttempts: number;
  cohortWaitMs: number;
  validationSeed: string;
  validationSamples: number;
  modelSeed: number;
  /** Secure aggregation, or null for plaintext updates. */
  secure: SecureAggregationConfig | null;
  /** Jobs share trainers in proportion to priority x task weight. */
  priority: number;
  /** The metric reports and the model card lead with (one of the task's). */
  metric: string;
}

/** Secure-aggregation settings of a job. */
export interface SecureAggregationConfig {
  minGroupSize: number;
  /** 0: the default for each group's size. */
  neighbours: number;
  /** 0: the default for each group's neighbours. */
  threshold: number;
  clipRange: number;
  stageTimeoutMs: number;
  unmaskTimeoutMs: number;
}
