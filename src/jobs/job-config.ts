/**
 * A job's settings, in one table, resolved once. Every setting of a job is a coordinator flag
 * (`JOB_OPTIONS`: its default, bounds and description) and a field of a researcher's job spec
 * (`JOB_SPEC_FIELDS` names which); the built-in job's flags (`coordinator/config.ts`) and each
 * submitted spec (`job-spec.ts`) are both turned into a {@link JobConfig} by
 * {@link resolveJobConfig}, with the same task defaults and the same checks. The round loop
 * reads nothing else.
 */
import { randomBytes } from 'node:crypto';
import { STRATEGIES } from '../aggregation/index.js';
import type { ModelSpec } from '../model/index.js';
import { getTask, TASK_NAMES, type TaskDefinition } from '../tasks/index.js';
import type { OptionTable, OptionValues } from '../util/index.js';

/** Every setting of a job, as coordinator flags. */
export const JOB_OPTIONS = {
  priority: { type: 'number', default: 1, min: 1, max: 100, description: 'the job\'s priority: jobs share the trainers in proportion to priority x task weight' },
  task: { type: 'string', default: 'exercise', choices: TASK_NAMES, description: 'task of the job' },
  'task-weight': { type: 'number', default: 0, min: 0, max: 1000, description: 'how much this job\'s rounds count in contribution scores against other jobs\' (0: the task\'s difficulty: exercise 1, pose 3)' },
  rounds: { type: 'number', default: 10, min: 1, max: 100_000, description: 'rounds to run' },
  cohort: { type: 'number', default: 10, min: 1, max: 100_000, description: 'trainers selected per round (at most the live ones)' },
  'min-trainers': { type: 'number', default: 3, min: 1, max: 100_000, description: 'updates a round needs to complete; fewer and it is retried' },
  'local-epochs': { type: 'number', default: 5, min: 1, max: 1000, description: 'local epochs a trainer runs per round' },
  'batch-size': { type: 'number', default: 32, min: 1, max: 65_536, description: 'local batch size' },
  lr: { type: 'number', default: 0, min: 0, max: 10, description: 'local learning rate (0: the task\'s default: exercise 0.002, pose 0.004, worksteps 0.001)' },
  optimizer: { type: 'string', default: 'adam', choices: ['adam', 'sgd'], description: 'local optimizer (sgd has momentum 0.9)' },
  'clip-norm': { type: 'number', default: 0, min: 0, description: 'clip each update to this L2 norm (0: no clipping); with --dp-noise, the sensitivity C of a group sum to one trainer' },
  'dp-noise': { type: 'number', default: 0, min: 0, max: 100, description: 'differential privacy: noise multiplier sigma; each trainer adds its share so that every group sum carries N(0, (sigma C)^2) a coordinate (0: off; needs --clip-norm and secure aggregation)' },
  'dp-delta': { type: 'number', default: 1e-5, min: 1e-15, max: 0.1, description: 'differential privacy: the delta epsilon is stated at' },
  'dp-epsilon': { type: 'number', default: 0, min: 0, max: 1e6, description: 'differential privacy budget: the job ends before a round would spend more (0: no limit; epsilon is reported either way)' },
  strategy: { type: 'string', default: 'fedavg', choices: STRATEGIES, description: 'server aggregation strategy' },
  'server-lr': { type: 'number', default: 0, min: 0, max: 100, description: 'server learning rate (0: the strategy\'s default, 1 for fedavg, 0.01 for fedadam)' },
  'secure-aggregation': { type: 'boolean', default: true, description: 'SecAgg+: the coordinator sees only sums of groups, never one update (--secure-aggregation false: plaintext updates)' },
  'min-group-size': { type: 'number', default: 5, min: 2, max: 1000, description: 'smallest secure-aggregation group; the cohort is split into groups of at least this many' },
  neighbours: { type: 'number', default: 0, min: 0, max: 1000, description: 'SecAgg+ neighbours per node, even (0: about 2 log2 of the group size; >= group size - 1: plain SecAgg)' },
  threshold: { type: 'number', default: 0, min: 0, max: 1000, description: 'shares that recover a secret, the fewest survivors a group needs (0: a majority of the neighbours)' },
  'clip-range': { type: 'number', default: 8, min: 0.001, max: 1e6, description: 'secure aggregation clips each weighted coordinate to [-c, c] before quantizing' },
  'stage-timeout': { type: 'number', default: 20, min: 0.1, max: 3600, description: 'seconds each key stage (advertise, share) of secure aggregation waits' },
  'unmask-timeout': { type: 'number', default: 20, min: 0.1, max: 3600, description: 'seconds the unmask stage waits for survivors\' shares' },
  'shards-per-round': { type: 'number', default: 0, min: 0, description: 'shards dealt per round (0: every shard of every dataset node)' },
  'round-timeout': { type: 'number', default: 60, min: 0.1, max: 86_400, description: 'seconds the TRAIN phase waits for updates' },
  'cohort-wait': { type: 'number', default: 5, min: 0, max: 3600, description: 'seconds the first round waits, once --min-trainers are live, for the whole cohort to register' },
  'max-attempts': { type: 'number', default: 5, min: 1, max: 1000, description: 'attempts of a round before the job fails' },
  'validation-samples': { type: 'number', default: 700, min: 7, max: 1_000_000, description: 'validation samples' },
  'model-seed': { type: 'number', default: 1, min: 0, description: 'seed of the initial model weights' },
} as const satisfies OptionTable;

/** A job setting's flag. */
export type JobOption = keyof typeof JOB_OPTIONS;

/**
 * The job spec's fields and the flags they set. `secureAggregation.enabled` and the other
 * `secureAggregation.*` fields sit in a mapping of their own, as does
 * `strategyParams.serverLearningRate`.
 */
export const JOB_SPEC_FIELDS = {
  priority: 'priority', task: 'task', taskWeight: 'task-weight', rounds: 'rounds', cohort: 'cohort',
  minTrainers: 'min-trainers', localEpochs: 'local-epochs', batchSize: 'batch-size', learningRate: 'lr',
  optimizer: 'optimizer', clipNorm: 'clip-norm', strategy: 'strategy', 'strategyParams.serverLearningRate': 'server-lr',
  'secureAggregation.enabled': 'secure-aggregation', 'secureAggregation.minGroupSize': 'min-group-size',
  'secureAggregation.neighbours': 'neighbours', 'secureAggregation.threshold': 'threshold',
  'secureAggregation.clipRange': 'clip-range', 'secureAggregation.stageTimeout': 'stage-timeout',
  'secureAggregation.unmaskTimeout': 'unmask-timeout', 'dp.noiseMultiplier': 'dp-noise', 'dp.delta': 'dp-delta', 'dp.epsilon': 'dp-epsilon', shardsPerRound: 'shards-per-round', roundTimeout: 'round-timeout',
  cohortWait: 'cohort-wait', maxAttempts: 'max-attempts', validationSamples: 'validation-samples', modelSeed: 'model-seed',
} as const satisfies Record<string, JobOption>;

/** Settings that count things, and so must be whole numbers. */
const INTEGERS: readonly JobOption[] = ['rounds', 'cohort', 'min-trainers', 'local-epochs', 'batch-size', 'max-attempts', 'validation-samples', 'shards-per-round', 'priority', 'min-group-size', 'neighbours', 'threshold', 'model-seed'];

/** Metrics a task's jobs may lead with, the first its default. */
export function taskMetrics(task: TaskDefinition): readonly string[] {
  return task.head.kind === 'classes' ? ['accuracy', 'loss'] : ['pck', 'mean_error', 'loss'];
}

/** What a job needs beyond its table settings. */
export interface JobIdentity {
  jobId: string;
  /** The model spec, already validated (null: the task's default model). */
  model: ModelSpec | null;
  /** The metric reports lead with ('' : the task's first). */
  metric: string;
  /** Seed of the validation data ('' : a random one, never sent to trainers). */
  validationSeed: string;
}

/**
 * How the caller names settings and refuses them: by flag (`--cohort`) for the coordinator's
 * flags, by field (`cohort`, in `job.cohort`) for a job spec.
 */
export interface SettingNames {
  name: (option: JobOption | 'metric') => string;
  /** Throws the caller's error (a config error, or an invalid field) for `option`. */
  fail: (option: JobOption | 'metric', expected: string, got: string) => never;
}

/** The spec field that sets each flag. */
export const SPEC_FIELD_OF: Readonly<Record<JobOption | 'metric', string>> = Object.freeze({
  ...Object.fromEntries(Object.entries(JOB_SPEC_FIELDS).map(([field, option]) => [option, field])), metric: 'metric',
} as Record<JobOption | 'metric', string>);

/**
 * The job's config from its settings (already within their bounds): whole numbers where they
 * count, at most as many needed updates as trainers, an even neighbour count, a cohort that fills
 * a secure group; the task's weight, learning rate and metric where none is given; seconds as
 * milliseconds. Frozen.
 */
export function resolveJobConfig(o: OptionValues<typeof JOB_OPTIONS>, id: JobIdentity, { name, fail }: SettingNames): JobConfig {
  for (const k of INTEGERS) if (!Number.isInteger(o[k])) fail(k, 'an integer', String(o[k]));
  if (o['min-trainers'] > o.cohort) fail('min-trainers', `at most ${name('cohort')} (${o.cohort})`, String(o['min-trainers']));
  if (o.neighbours % 2 === 1) fail('neighbours', 'an even number (or 0 for the default)', String(o.neighbours));
  if (o['secure-aggregation'] && o.cohort < o['min-group-size']) {
    fail('cohort', `at least ${name('min-group-size')} (${o['min-group-size']}) with secure aggregation on`, String(o.cohort));
  }
  if (o['dp-noise'] > 0 && !o['secure-aggregation']) {
    fail('dp-noise', `0 without secure aggregation (the coordinator would see each update and its noise share); turn ${name('secure-aggregation')} on`, String(o['dp-noise']));
  }
  if (o['dp-noise'] > 0 && !(o['clip-norm'] > 0)) fail('clip-norm', `a positive L2 bound with ${name('dp-noise')} (the sensitivity the noise is scaled to)`, String(o['clip-norm']));
  if (o['dp-epsilon'] > 0 && !(o['dp-noise'] > 0)) fail('dp-epsilon', `0 without ${name('dp-noise')}`, String(o['dp-epsilon']));
  const task = getTask(o.task);
  const metrics = taskMetrics(task);
  const metric = id.metric || metrics[0]!;
  if (!metrics.includes(metric)) fail('metric', `one of ${metrics.join(', ')}`, JSON.stringify(metric));
  return Object.freeze({
    jobId: id.jobId,
    task: task.name,
    model: id.model ?? task.defaultModel,
    taskWeight: o['task-weight'] > 0 ? o['task-weight'] : task.difficulty,
    rounds: o.rounds,
    cohort: o.cohort,
    minTrainers: o['min-trainers'],
    localEpochs: o['local-epochs'],
    batchSize: o['batch-size'],
    learningRate: o.lr > 0 ? o.lr : task.defaultLearningRate,
    optimizer: o.optimizer as JobConfig['optimizer'],
    clipNorm: o['clip-norm'],
    strategy: o.strategy,
    serverLearningRate: o['server-lr'],
    shardsPerRound: o['shards-per-round'],
    roundTimeoutMs: o['round-timeout'] * 1000,
    maxAttempts: o['max-attempts'],
    cohortWaitMs: o['cohort-wait'] * 1000,
    validationSeed: id.validationSeed || randomBytes(16).toString('hex'),
    validationSamples: o['validation-samples'],
    modelSeed: o['model-seed'],
    priority: o.priority,
    metric,
    dp: o['dp-noise'] > 0 ? Object.freeze({ noiseMultiplier: o['dp-noise'], delta: o['dp-delta'], epsilonBudget: o['dp-epsilon'] }) : null,
    secure: o['secure-aggregation'] ? Object.freeze({
      minGroupSize: o['min-group-size'],
      neighbours: o.neighbours,
      threshold: o.threshold,
      clipRange: o['clip-range'],
      stageTimeoutMs: o['stage-timeout'] * 1000,
      unmaskTimeoutMs: o['unmask-timeout'] * 1000,
    }) : null,
  });
}

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
  /** Differential privacy (distributed Gaussian noise under secure aggregation), or null. */
  dp: DpConfig | null;
  /** Jobs share trainers in proportion to priority x task weight. */
  priority: number;
  /** The metric reports and the model card lead with (one of the task's). */
  metric: string;
}

/** Differential-privacy settings of a job (the clip C is `clipNorm`). */
export interface DpConfig {
  noiseMultiplier: number;
  delta: number;
  /** 0: no budget. */
  epsilonBudget: number;
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
