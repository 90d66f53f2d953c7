/**
 * A researcher's job spec (YAML or JSON) into a job config. Every field is optional but the
 * task; the others default to the coordinator's flags' defaults and are bounded by the same
 * table, so a job submitted over gRPC and the built-in job from the command line obey one set
 * of rules. The model spec is checked separately, against the coordinator's budgets, when the
 * job is built (`budget.ts`).
 *
 * ```yaml
 * id: squat-depth            # optional: letters, digits, . _ -
 * task: pose
 * model: { family: cnn, widths: [16, 32, 64, 96] }
 * rounds: 20
 * cohort: 8
 * minTrainers: 3
 * localEpochs: 2
 * batchSize: 32
 * learningRate: 0.004          # default: the task's (exercise 0.002, pose 0.004)
 * optimizer: adam
 * strategy: fedadam
 * strategyParams: { serverLearningRate: 0.01 }
 * secureAggregation: { enabled: true, minGroupSize: 4 }
 * metric: pck
 * priority: 2
 * ```
 */
import { randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { InvalidFieldError } from '../src/errors.js';
import { getTask, type TaskDefinition } from '../src/tasks/index.js';
import { validateModelSpec } from '../src/model/index.js';
import { COORDINATOR_OPTIONS, type JobConfig } from './config.js';

/** Largest spec accepted (a Layers topology of a few hundred layers fits easily). */
export const MAX_SPEC_BYTES = 1 << 20;

/** Metrics a task's jobs may name, the first its default. */
export function taskMetrics(task: TaskDefinition): readonly string[] {
  return task.head.kind === 'classes' ? ['accuracy', 'loss'] : ['pck', 'mean_error', 'loss'];
}

type NumberField = { option: keyof typeof COORDINATOR_OPTIONS; scale?: number };

/** Plain numeric fields and the coordinator flag whose bounds and default they share. */
const NUMBERS: Record<string, NumberField> = {
  rounds: { option: 'rounds' },
  cohort: { option: 'cohort' },
  minTrainers: { option: 'min-trainers' },
  localEpochs: { option: 'local-epochs' },
  batchSize: { option: 'batch-size' },
  learningRate: { option: 'lr' },
  clipNorm: { option: 'clip-norm' },
  shardsPerRound: { option: 'shards-per-round' },
  roundTimeout: { option: 'round-timeout', scale: 1000 },
  cohortWait: { option: 'cohort-wait', scale: 1000 },
  maxAttempts: { option: 'max-attempts' },
  validationSamples: { option: 'validation-samples' },
  modelSeed: { option: 'model-seed' },
  taskWeight: { option: 'task-weight' },
  priority: { option: 'priority' },
};

const SECURE_NUMBERS: Record<string, NumberField> = {
  minGroupSize: { option: 'min-group-size' },
  neighbours: { option: 'neighbours' },
  threshold: { option: 'threshold' },
  clipRange: { option: 'clip-range' },
  stageTimeout: { option: 'stage-timeout', scale: 1000 },
  unmaskTimeout: { option: 'unmask-timeout', scale: 1000 },
};

const OTHER_FIELDS = ['id', 'task', 'model', 'optimizer', 'strategy', 'strategyParams', 'secureAggregation', 'metric', 'description'];

function number(field: string, f: NumberField, raw: unknown): number {
  const o = COORDINATOR_OPTIONS[f.option] as { default?: unknown; min?: number; max?: number };
  const v = raw === undefined ? (o.default as number) : raw;
  const range = `${o.min ?? '-inf'} to ${o.max ?? 'inf'}`;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidFieldError(field, `a number ${range}`, JSON.stringify(v));
  if ((o.min !== undefined && v < o.min) || (o.max !== undefined && v > o.max)) throw new InvalidFieldError(field, `a number ${range}`, String(v));
  return v * (f.scale ?? 1);
}

function object(field: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidFieldError(field, 'a mapping', JSON.stringify(v));
  return v as Record<string, unknown>;
}

function onlyKnown(field: string, o: Record<string, unknown>, known: string[]): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw new InvalidFieldError(`${field}.${k}`, `no such field (known: ${known.join(', ')})`, JSON.stringify(o[k])?.slice(0, 60) ?? 'undefined');
  }
}

function choice(field: string, allowed: readonly string[], v: unknown, fallback: string): string {
  const x = v === undefined ? fallback : v;
  if (typeof x !== 'string' || !allowed.includes(x)) throw new InvalidFieldError(field, `one of ${allowed.join(', ')}`, JSON.stringify(x));
  return x;
}

/** A parsed spec: the job's config, and its description for listings. */
export interface ParsedJobSpec {
  config: JobConfig;
  description: string;
}

/** Parses a spec's text (YAML, of which JSON is a subset) into a job config. */
export function parseJobSpec(text: string): ParsedJobSpec {
  if (Buffer.byteLength(text) > MAX_SPEC_BYTES) throw new InvalidFieldError('spec', `at most ${MAX_SPEC_BYTES} bytes`, `${Buffer.byteLength(text)} bytes`);
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new InvalidFieldError('spec', 'a YAML or JSON job spec', (err as Error).message.split('\n')[0]!);
  }
  return jobConfigFrom(doc);
}

/** A spec already parsed into a value. */
export function jobConfigFrom(doc: unknown): ParsedJobSpec {
  if (doc === undefined || doc === null) throw new InvalidFieldError('job', 'a mapping with at least a task', 'an empty document');
  const s = object('job', doc);
  onlyKnown('job', s, [...Object.keys(NUMBERS), ...OTHER_FIELDS]);
  const id = s.id === undefined ? `job-${randomBytes(4).toString('hex')}` : s.id;
  if (typeof id !== 'string' || !/^[\w.-]{1,64}$/.test(id)) throw new InvalidFieldError('job.id', 'letters, digits, . _ - (1 to 64)', JSON.stringify(id));
  if (s.task === undefined) throw new InvalidFieldError('job.task', 'a task (exercise or pose)', 'nothing');
  let task: TaskDefinition;
  try {
    task = getTask(typeof s.task === 'string' ? s.task : JSON.stringify(s.task));
  } catch (err) {
    throw new InvalidFieldError('job.task', (err as InvalidFieldError).expected, JSON.stringify(s.task));
  }
  const n = Object.fromEntries(Object.entries(NUMBERS).map(([k, f]) => [k, number(`job.${k}`, f, s[k])]));
  for (const k of ['rounds', 'cohort', 'minTrainers', 'localEpochs', 'batchSize', 'maxAttempts', 'validationSamples', 'shardsPerRound', 'priority']) {
    if (!Number.isInteger(n[k])) throw new InvalidFieldError(`job.${k}`, 'an integer', String(n[k]));
  }
  if (n.minTrainers! > n.cohort!) throw new InvalidFieldError('job.minTrainers', `at most cohort (${n.cohort})`, String(n.minTrainers));
  const strategyParams = object('job.strategyParams', s.strategyParams);
  onlyKnown('job.strategyParams', strategyParams, ['serverLearningRate']);
  const serverLearningRate = number('job.strategyParams.serverLearningRate', { option: 'server-lr' }, strategyParams.serverLearningRate);
  const sec = object('job.secureAggregation', s.secureAggregation);
  onlyKnown('job.secureAggregation', sec, ['enabled', ...Object.keys(SECURE_NUMBERS)]);
  if (sec.enabled !== undefined && typeof sec.enabled !== 'boolean') throw new InvalidFieldError('job.secureAggregation.enabled', 'true or false', JSON.stringify(sec.enabled));
  const secure = sec.enabled ?? COORDINATOR_OPTIONS['secure-aggregation'].default;
  const sn = Object.fromEntries(Object.entries(SECURE_NUMBERS).map(([k, f]) => [k, number(`job.secureAggregation.${k}`, f, sec[k])]));
  if (sn.neighbours! % 2 === 1) throw new InvalidFieldError('job.secureAggregation.neighbours', 'an even number (or 0 for the default)', String(sn.neighbours));
  if (secure && n.cohort! < sn.minGroupSize!) throw new InvalidFieldError('job.cohort', `at least secureAggregation.minGroupSize (${sn.minGroupSize})`, String(n.cohort));
  let model;
  try {
    model = s.model === undefined ? task.defaultModel : validateModelSpec(s.model);
  } catch (err) {
    const e = err as InvalidFieldError;
    throw new InvalidFieldError(`job.${e.field}`, e.expected, e.got);
  }
  const metrics = taskMetrics(task);
  const description = s.description === undefined ? '' : (typeof s.description === 'string' ? s.description : JSON.stringify(s.description)).slice(0, 500);
  const config: JobConfig = {
    jobId: id,
    task: task.name,
    model,
    taskWeight: n.taskWeight! > 0 ? n.taskWeight! : task.difficulty,
    rounds: n.rounds!,
    cohort: n.cohort!,
    minTrainers: n.minTrainers!,
    localEpochs: n.localEpochs!,
    batchSize: n.batchSize!,
    learningRate: n.learningRate! > 0 ? n.learningRate! : task.defaultLearningRate,
    optimizer: choice('job.optimizer', COORDINATOR_OPTIONS.optimizer.choices, s.optimizer, COORDINATOR_OPTIONS.optimizer.default) as JobConfig['optimizer'],
    clipNorm: n.clipNorm!,
    strategy: choice('job.strategy', COORDINATOR_OPTIONS.strategy.choices, s.strategy, COORDINATOR_OPTIONS.strategy.default),
    serverLearningRate,
    shardsPerRound: n.shardsPerRound!,
    roundTimeoutMs: n.roundTimeout!,
    maxAttempts: n.maxAttempts!,
    cohortWaitMs: n.cohortWait!,
    validationSeed: randomBytes(16).toString('hex'),
    validationSamples: n.validationSamples!,
    modelSeed: n.modelSeed!,
    priority: n.priority!,
    metric: choice('job.metric', metrics, s.metric, metrics[0]!),
    secure: secure ? {
      minGroupSize: sn.minGroupSize!, neighbours: sn.neighbours!, threshold: sn.threshold!, clipRange: sn.clipRange!,
      stageTimeoutMs: sn.stageTimeout!, unmaskTimeoutMs: sn.unmaskTimeout!,
    } : null,
  };
  return { config, description };
}
