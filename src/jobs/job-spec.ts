/**
 * A researcher's job spec (YAML or JSON) into a job config. Every field is optional but the
 * task; each is a setting of the one job table (`src/jobs/job-config.ts`: `JOB_SPEC_FIELDS`
 * names its flag), with that flag's default and bounds, and the config is resolved by the same
 * function as the built-in job's, so a job submitted over gRPC and the built-in job from the
 * command line obey one set of rules. The model spec is checked separately, against the coordinator's budgets, when the
 * job is built (`model/budget.ts`).
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
 * clipNorm: 1                  # with dp: the L2 bound of one update (the sensitivity)
 * dp: { noiseMultiplier: 0.8, delta: 1e-5, epsilon: 8 }   # differential privacy; epsilon: the budget
 * metric: pck
 * priority: 2
 * ```
 */
import { randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { InvalidFieldError } from '../errors.js';
import { ID_RULE, isId, type OptionValues } from '../util/index.js';
import { validateModelSpec } from '../model/contract.js';
import { JOB_OPTIONS, JOB_SPEC_FIELDS, resolveJobConfig, SPEC_FIELD_OF, type JobConfig, type JobOption } from './job-config.js';

/** Largest spec accepted (a Layers topology of a few hundred layers fits easily). */
export const MAX_SPEC_BYTES = 1 << 20;

/** The top-level fields of a spec, in the order error messages list them. */
const TOP_FIELDS = [
  'rounds', 'cohort', 'minTrainers', 'localEpochs', 'batchSize', 'learningRate', 'clipNorm', 'shardsPerRound', 'roundTimeout', 'cohortWait',
  'maxAttempts', 'validationSamples', 'modelSeed', 'taskWeight', 'priority', 'id', 'task', 'model', 'optimizer', 'strategy', 'strategyParams',
  'secureAggregation', 'dp', 'metric', 'description',
];

/** The fields of a nested mapping (`secureAggregation`, `strategyParams`, `dp`). */
function nestedFields(parent: string): string[] {
  return Object.keys(JOB_SPEC_FIELDS).filter((f) => f.startsWith(`${parent}.`)).map((f) => f.slice(parent.length + 1));
}

/** One setting's value from the spec (its flag's default when absent), within the flag's bounds. */
function setting(field: string, option: JobOption, raw: unknown): string | number | boolean {
  const o = JOB_OPTIONS[option] as { type: string; default: unknown; min?: number; max?: number; choices?: readonly string[] };
  const v = raw === undefined ? o.default : raw;
  if (o.type === 'boolean') {
    if (typeof v !== 'boolean') throw new InvalidFieldError(field, 'true or false', JSON.stringify(v));
    return v;
  }
  if (o.type === 'string') {
    if (typeof v !== 'string' || (o.choices && !o.choices.includes(v))) throw new InvalidFieldError(field, `one of ${o.choices?.join(', ') ?? 'a string'}`, JSON.stringify(v));
    return v;
  }
  const range = `${o.min ?? '-inf'} to ${o.max ?? 'inf'}`;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidFieldError(field, `a number ${range}`, JSON.stringify(v));
  if ((o.min !== undefined && v < o.min) || (o.max !== undefined && v > o.max)) throw new InvalidFieldError(field, `a number ${range}`, String(v));
  return v;
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
  onlyKnown('job', s, TOP_FIELDS);
  const nested: Record<string, Record<string, unknown>> = {};
  for (const parent of ['strategyParams', 'secureAggregation', 'dp']) {
    nested[parent] = object(`job.${parent}`, s[parent]);
    onlyKnown(`job.${parent}`, nested[parent], nestedFields(parent));
  }
  const id = s.id === undefined ? `job-${randomBytes(4).toString('hex')}` : s.id;
  if (!isId(id)) throw new InvalidFieldError('job.id', ID_RULE, JSON.stringify(id));
  if (s.task === undefined) throw new InvalidFieldError('job.task', 'a task (exercise or pose)', 'nothing');
  const values = Object.fromEntries(Object.entries(JOB_SPEC_FIELDS).map(([field, option]) => {
    const [parent, child] = field.split('.') as [string, string | undefined];
    return [option, setting(`job.${field}`, option, child === undefined ? s[parent] : nested[parent]![child])];
  })) as OptionValues<typeof JOB_OPTIONS>;
  let model;
  try {
    model = s.model === undefined ? null : validateModelSpec(s.model);
  } catch (err) {
    const e = err as InvalidFieldError;
    throw new InvalidFieldError(`job.${e.field}`, e.expected, e.got);
  }
  if (s.metric !== undefined && typeof s.metric !== 'string') throw new InvalidFieldError('job.metric', 'a metric name', JSON.stringify(s.metric));
  const config = resolveJobConfig(values, { jobId: id, model, metric: s.metric ?? '', validationSeed: '' }, {
    name: (option) => SPEC_FIELD_OF[option],
    fail: (option, expected, got) => { throw new InvalidFieldError(`job.${SPEC_FIELD_OF[option]}`, expected, got); },
  });
  const description = s.description === undefined ? '' : (typeof s.description === 'string' ? s.description : JSON.stringify(s.description)).slice(0, 500);
  return { config, description };
}
