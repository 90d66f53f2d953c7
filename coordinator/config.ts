/**
 * Coordinator options: every flag, its default and its environment variable, parsed once into
 * a frozen config.
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { LOG_OPTIONS, logConfigOf, type LogConfig } from '../src/node/index.js';
import { parseOptions, type OptionTable } from '../src/util/index.js';
import { ConfigError } from '../src/errors.js';
import { checkTlsOptions } from '../src/wire/index.js';
import { STRATEGIES } from '../src/aggregation/index.js';
import { type HotkeySource, DEFAULT_WALLET_PATH, walletHotkeyPath } from '../src/chain/index.js';
import { validateModelSpec, type ModelSpec, type ModelBudget } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';
import type { JobConfig } from '../src/jobs/index.js';

export type { JobConfig, SecureAggregationConfig } from '../src/jobs/index.js';

export const COORDINATOR_OPTIONS = {
  listen: { type: 'string', default: '127.0.0.1:50051', env: 'AQ_COORDINATOR_LISTEN', description: 'host:port the gRPC server binds (port 0 picks one; 0.0.0.0 for other machines)' },
  job: { type: 'boolean', default: true, description: 'run the built-in job these flags describe (--job false: only jobs researchers submit with `actiquest submit`)' },
  'job-id': { type: 'string', default: 'job-1', description: 'id of the built-in job' },
  priority: { type: 'number', default: 1, min: 1, max: 100, description: 'the built-in job\'s priority: jobs share the trainers in proportion to priority x task weight' },
  'max-params': { type: 'number', default: 5_000_000, min: 1, max: 20_000_000, description: 'largest model (parameters) a job may train: models are for edge devices' },
  'max-flops': { type: 'number', default: 1e9, min: 1, max: 1e12, description: 'largest forward FLOPs a sample a job\'s model may take' },
  task: { type: 'string', default: 'exercise', choices: ['exercise', 'pose'], description: 'built-in task of the job' },
  hidden: { type: 'string', default: '', description: 'hidden layer sizes of an MLP model, comma-separated (empty: the task\'s default model)' },
  'task-weight': { type: 'number', default: 0, min: 0, max: 1000, description: 'how much this job\'s rounds count in contribution scores against other jobs\' (0: the task\'s difficulty: exercise 1, pose 3)' },
  model: { type: 'string', default: '', description: 'model spec as JSON, e.g. {"family":"cnn","widths":[16,32,64]} or {"family":"vit","patch":8,"dim":64,"depth":4,"heads":4} (empty: the task\'s default)' },
  rounds: { type: 'number', default: 10, min: 1, max: 100_000, description: 'rounds to run' },
  cohort: { type: 'number', default: 10, min: 1, max: 100_000, description: 'trainers selected per round (at most the live ones)' },
  'min-trainers': { type: 'number', default: 3, min: 1, max: 100_000, description: 'updates a round needs to complete; fewer and it is retried' },
  'local-epochs': { type: 'number', default: 5, min: 1, max: 1000, description: 'local epochs a trainer runs per round' },
  'batch-size': { type: 'number', default: 32, min: 1, max: 65_536, description: 'local batch size' },
  lr: { type: 'number', default: 0, min: 0, max: 10, description: 'local learning rate (0: the task\'s default: exercise 0.002, pose 0.004)' },
  optimizer: { type: 'string', default: 'adam', choices: ['adam', 'sgd'], description: 'local optimizer (sgd has momentum 0.9)' },
  'clip-norm': { type: 'number', default: 0, min: 0, description: 'clip each update to this L2 norm (0: no clipping)' },
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
  'heartbeat-interval-ms': { type: 'number', default: 1000, min: 50, max: 600_000, description: 'how often nodes heartbeat' },
  'live-timeout-ms': { type: 'number', default: 5000, min: 100, max: 3_600_000, description: 'a node silent this long is dropped from its round' },
  'validation-seed': { type: 'string', default: '', env: 'AQ_VALIDATION_SEED', description: 'seed of the validation data (empty: random, never sent to trainers)' },
  'validation-samples': { type: 'number', default: 700, min: 7, max: 1_000_000, description: 'validation samples' },
  'model-seed': { type: 'number', default: 1, min: 0, description: 'seed of the initial model weights' },
  chain: { type: 'string', default: '', env: 'AQ_CHAIN', description: 'subtensor node (ws:// or wss://) to set weights on after each round; empty: write them to weights.json only' },
  netuid: { type: 'number', default: 0, min: 0, max: 65535, env: 'AQ_NETUID', description: 'subnet to set weights on (with --chain)' },
  'hotkey-uri': { type: 'string', default: '', env: 'AQ_HOTKEY_URI', description: 'secret URI (mnemonic or //Name) of the validator hotkey; prefer the environment, it is never printed' },
  'hotkey-file': { type: 'string', default: '', env: 'AQ_HOTKEY_FILE', description: 'btcli hotkey file of the validator (~/.bittensor/wallets/NAME/hotkeys/HOTKEY), instead of --hotkey-uri; a $NACL file is opened with AQ_WALLET_PASSWORD' },
  'wallet.name': { type: 'string', default: '', env: 'AQ_WALLET_NAME', description: 'btcli wallet of the validator hotkey (as btcli\'s --wallet.name), instead of --hotkey-file' },
  'wallet.hotkey': { type: 'string', default: 'default', env: 'AQ_WALLET_HOTKEY', description: 'hotkey in that wallet' },
  'wallet.path': { type: 'string', default: DEFAULT_WALLET_PATH, env: 'AQ_WALLET_PATH', description: 'folder of btcli wallets' },
  out: { type: 'string', default: 'out/coordinator', env: 'AQ_OUT', description: 'folder for the final model (TF.js) and the round history' },
  'exit-when-done': { type: 'boolean', default: false, description: 'exit once every job (the built-in one and those submitted) has ended' },
  'metrics-host': { type: 'string', default: '127.0.0.1', description: 'host of the Prometheus endpoint' },
  'metrics-port': { type: 'number', default: 9460, min: -1, max: 65535, env: 'AQ_METRICS_PORT', description: 'port of /metrics (0 picks one, -1 disables)' },
  auth: { type: 'string', default: 'open', choices: ['open', 'signed'], env: 'AQ_AUTH', description: 'signed: every request must carry a hotkey signature, timestamp and nonce (UNAUTHENTICATED otherwise), and the hotkey must be admitted by --allowlist or, with --chain, the subnet\'s metagraph (PERMISSION_DENIED otherwise); open: no signatures (loopback and tests)' },
  allowlist: { type: 'string', default: '', env: 'AQ_ALLOWLIST', description: 'file of admitted hotkeys: an SS58 address a line, optionally followed by roles (trainer, dataset, researcher)' },
  'lease-key-uri': { type: 'string', default: '', env: 'AQ_LEASE_KEY_URI', description: 'secret URI of the key that signs shard leases (default: the validator hotkey with --chain, else a new key each start); never printed' },
  'auth-max-skew': { type: 'number', default: 60, min: 1, max: 3600, description: 'seconds a signed request\'s timestamp may be from this clock' },
  'tls-cert': { type: 'string', default: '', env: 'AQ_TLS_CERT', description: 'PEM certificate (chain) of this node\'s gRPC server; with --tls-key, the server speaks TLS only' },
  'tls-key': { type: 'string', default: '', env: 'AQ_TLS_KEY', description: 'PEM private key of --tls-cert' },
  ...LOG_OPTIONS,
} as const satisfies OptionTable;

/** The resolved coordinator configuration. */
export interface CoordinatorConfig extends LogConfig {
  listen: string;
  /** The built-in job (null with --job false). */
  job: JobConfig | null;
  /** Budgets every job's model must fit. */
  budget: ModelBudget;
  heartbeatIntervalMs: number;
  liveTimeoutMs: number;
  out: string;
  /** Where weights go on chain; null: weights.json only. */
  chain: { url: string; netuid: number; hotkey: HotkeySource } | null;
  exitWhenDone: boolean;
  metricsHost: string;
  metricsPort: number;
  tlsCert: string;
  tlsKey: string;
  /** Secret URI of the lease key ('' : the validator hotkey, or a key of this run). */
  leaseKeyUri: string;
  /** Signed requests and admission, or null for an open server. */
  auth: { allowlist: string; maxSkewMs: number } | null;
}

export const COORDINATOR_USAGE = 'actiquest coordinator [options]';
export const COORDINATOR_SUMMARY = 'Runs a federated training job: selects trainers each round, aggregates their updates, evaluates the global model.';

/** The job's model: `--model` JSON, else the task's default (an MLP's layers from `--hidden`). */
function modelOf(taskName: string, json: string, hiddenText: string): ModelSpec {
  if (json && hiddenText) throw new ConfigError('hidden', 'nothing when --model is given (put the layers in the spec)', JSON.stringify(hiddenText));
  if (json) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw new ConfigError('model', 'a JSON model spec', JSON.stringify(json));
    }
    try {
      return validateModelSpec(parsed);
    } catch (err) {
      throw new ConfigError('model', (err as Error).message, json);
    }
  }
  const base = getTask(taskName).defaultModel;
  if (!hiddenText) return base;
  const hidden = hiddenText.split(',').map((s) => Number(s.trim()));
  if (hidden.length === 0 || hidden.some((h) => !Number.isInteger(h) || h < 1 || h > 4096)) {
    throw new ConfigError('hidden', 'comma-separated integers 1 to 4096', JSON.stringify(hiddenText));
  }
  if (base.family !== 'mlp') throw new ConfigError('hidden', `nothing for task ${taskName}, whose default model is a ${base.family} (use --model)`, JSON.stringify(hiddenText));
  return { ...base, hidden };
}

/** Parses flags and environment into a frozen config. */
export function loadCoordinatorConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CoordinatorConfig {
  const o = parseOptions(COORDINATOR_OPTIONS, argv, env, COORDINATOR_USAGE, COORDINATOR_SUMMARY);
  if (!/^[^:]+:\d+$/.test(o.listen)) throw new ConfigError('listen', 'host:port', JSON.stringify(o.listen));
  const model = modelOf(o.task, o.model, o.hidden);
  if (o['min-trainers'] > o.cohort) throw new ConfigError('min-trainers', `at most --cohort (${o.cohort})`, String(o['min-trainers']));
  if (o.chain && !/^wss?:\/\//.test(o.chain)) throw new ConfigError('chain', 'a ws:// or wss:// URL', JSON.stringify(o.chain));
  let hotkeyFile = o['hotkey-file'] ? path.resolve(o['hotkey-file']) : '';
  if (o['wallet.name']) {
    if (hotkeyFile) throw new ConfigError('wallet.name', 'nothing when --hotkey-file is given', JSON.stringify(o['wallet.name']));
    try {
      hotkeyFile = walletHotkeyPath(o['wallet.path'], o['wallet.name'], o['wallet.hotkey']);
    } catch (err) {
      throw new ConfigError('wallet.name', (err as Error).message, JSON.stringify(o['wallet.name']));
    }
  }
  if (o.chain && !o['hotkey-uri'] && !hotkeyFile) throw new ConfigError('hotkey-uri', 'the validator hotkey (AQ_HOTKEY_URI, --hotkey-file or --wallet.name) when --chain is given', 'nothing');
  if (o.neighbours % 2 === 1) throw new ConfigError('neighbours', 'an even number (or 0 for the default)', String(o.neighbours));
  if (o['secure-aggregation'] && o.cohort < o['min-group-size']) {
    throw new ConfigError('cohort', `at least --min-group-size (${o['min-group-size']}) with secure aggregation on`, String(o.cohort));
  }
  if (!/^[\w.-]{1,64}$/.test(o['job-id'])) throw new ConfigError('job-id', 'letters, digits, . _ - (1 to 64)', JSON.stringify(o['job-id']));
  const job: JobConfig = Object.freeze({
    jobId: o['job-id'],
    task: o.task,
    model,
    taskWeight: o['task-weight'] > 0 ? o['task-weight'] : getTask(o.task).difficulty,
    rounds: o.rounds,
    cohort: o.cohort,
    minTrainers: o['min-trainers'],
    localEpochs: o['local-epochs'],
    batchSize: o['batch-size'],
    learningRate: o.lr > 0 ? o.lr : getTask(o.task).defaultLearningRate,
    optimizer: o.optimizer as 'adam' | 'sgd',
    clipNorm: o['clip-norm'],
    strategy: o.strategy,
    serverLearningRate: o['server-lr'],
    shardsPerRound: o['shards-per-round'],
    roundTimeoutMs: o['round-timeout'] * 1000,
    maxAttempts: o['max-attempts'],
    cohortWaitMs: o['cohort-wait'] * 1000,
    validationSeed: o['validation-seed'] || randomBytes(16).toString('hex'),
    validationSamples: o['validation-samples'],
    modelSeed: o['model-seed'],
    priority: o.priority,
    metric: getTask(o.task).head.kind === 'classes' ? 'accuracy' : 'pck',
    secure: o['secure-aggregation'] ? Object.freeze({
      minGroupSize: o['min-group-size'],
      neighbours: o.neighbours,
      threshold: o.threshold,
      clipRange: o['clip-range'],
      stageTimeoutMs: o['stage-timeout'] * 1000,
      unmaskTimeoutMs: o['unmask-timeout'] * 1000,
    }) : null,
  });
  checkTlsOptions(o['tls-cert'], o['tls-key'], '');
  if (o.allowlist && o.auth !== 'signed') throw new ConfigError('allowlist', 'nothing unless --auth signed (an open server admits everyone)', JSON.stringify(o.allowlist));
  return Object.freeze({
    listen: o.listen,
    job: o.job ? job : null,
    budget: Object.freeze({ maxParams: o['max-params'], maxFlops: o['max-flops'] }),
    heartbeatIntervalMs: o['heartbeat-interval-ms'],
    liveTimeoutMs: o['live-timeout-ms'],
    out: path.resolve(o.out),
    chain: o.chain ? Object.freeze({ url: o.chain, netuid: o.netuid, hotkey: hotkeyFile ? { file: hotkeyFile } : { uri: o['hotkey-uri'] } }) : null,
    exitWhenDone: o['exit-when-done'],
    metricsHost: o['metrics-host'],
    metricsPort: o['metrics-port'],
    tlsCert: o['tls-cert'] ? path.resolve(o['tls-cert']) : '',
    tlsKey: o['tls-key'] ? path.resolve(o['tls-key']) : '',
    leaseKeyUri: o['lease-key-uri'],
    auth: o.auth === 'signed' ? Object.freeze({ allowlist: o.allowlist ? path.resolve(o.allowlist) : '', maxSkewMs: o['auth-max-skew'] * 1000 }) : null,
    ...logConfigOf(o),
  });
}
