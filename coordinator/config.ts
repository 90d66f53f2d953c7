/**
 * Coordinator options: every flag, its default and its environment variable, parsed once into
 * a frozen config.
 */
import os from 'node:os';
import { isIP } from 'node:net';
import path from 'node:path';
import { HOTKEY_OPTIONS, hotkeySourceOf, LOG_OPTIONS, logConfigOf, type LogConfig, metricsOptions, metricsConfigOf, SERVER_TLS_OPTIONS, serverTlsOf, type MetricsConfig, type ServerTlsConfig } from '../src/node/index.js';
import { ID_RULE, isId, parseOptions, type OptionTable } from '../src/util/index.js';
import { ConfigError } from '../src/errors.js';
import type { HotkeySource } from '../src/chain/index.js';
import { BACKENDS, validateModelSpec, type BackendName, type ModelSpec, type ModelBudget } from '../src/model/contract.js';
import { getTask } from '../src/tasks/index.js';
import { JOB_OPTIONS, resolveJobConfig, type JobConfig } from '../src/jobs/index.js';

export type { JobConfig, SecureAggregationConfig } from '../src/jobs/index.js';

/**
 * Mask threads by default, at most: each is a V8 isolate with tsx loaded, about 30 MiB resident.
 * At 100 trainers and 10M parameters on a 16-core machine, sixteen peaked at 1,318 MiB and four
 * at 825 MiB (`npm run bench:scale -- --runs 100x10000000`, docs/performance.md).
 */
export const DEFAULT_MASK_THREADS = 4;

/** `--mask-threads` resolved: the flag, or (0) the machine's cores up to {@link DEFAULT_MASK_THREADS}. */
export function resolveMaskThreads(flag: number, cores = os.availableParallelism()): number {
  return flag || Math.min(cores, DEFAULT_MASK_THREADS);
}

export const COORDINATOR_OPTIONS = {
  listen: { type: 'string', default: '127.0.0.1:50051', env: 'AQ_COORDINATOR_LISTEN', description: 'host:port the gRPC server binds (port 0 picks one; 0.0.0.0 for other machines)' },
  job: { type: 'boolean', default: true, description: 'run the built-in job these flags describe (--job false: only jobs researchers submit with `actiquest submit`)' },
  'job-id': { type: 'string', default: 'job-1', description: 'id of the built-in job' },
  ...JOB_OPTIONS,
  'max-params': { type: 'number', default: 5_000_000, min: 1, max: 20_000_000, description: 'largest model (parameters) a job may train: models are for edge devices' },
  'max-flops': { type: 'number', default: 1e9, min: 1, max: 1e12, description: 'largest forward FLOPs a sample a job\'s model may take' },
  'model-backend': { type: 'string', default: 'auto', choices: [...BACKENDS], env: 'AQ_MODEL_BACKEND', description: 'TF.js backend of each job\'s model process (validation gradient, scores of group sums, validation); auto: the fastest that loads' },
  'max-activation-bytes': { type: 'number', default: 2 ** 30, min: 1 << 20, max: 2 ** 31, description: 'most activation memory a training step or validation pass of a job\'s model may take at its batch (every layer\'s outputs and their gradients; the wasm backend has 4 GiB)' },
  'max-active-jobs': { type: 'number', default: 8, min: 1, max: 1000, description: 'most jobs pending or running at once, the built-in one included (each holds a model process); a submission beyond is refused with RESOURCE_EXHAUSTED' },
  'max-model-memory-mib': { type: 'number', default: 4096, min: 256, max: 1_048_576, description: 'most resident memory the process holding one job\'s model (its evaluations, gradients and export) may take; past it the process is stopped and that job fails, nothing else' },
  hidden: { type: 'string', default: '', description: 'hidden layer sizes of an MLP model, comma-separated (empty: the task\'s default model)' },
  model: { type: 'string', default: '', description: 'model spec as JSON, e.g. {"family":"cnn","widths":[16,32,64]} or {"family":"vit","patch":8,"dim":64,"depth":4,"heads":4} (empty: the task\'s default)' },
  'heartbeat-interval-ms': { type: 'number', default: 1000, min: 50, max: 600_000, description: 'how often nodes heartbeat' },
  'live-timeout-ms': { type: 'number', default: 5000, min: 100, max: 3_600_000, description: 'a node silent this long is dropped from its round' },
  'validation-seed': { type: 'string', default: '', env: 'AQ_VALIDATION_SEED', description: 'seed of the validation data (empty: random, never sent to trainers)' },
  chain: { type: 'string', default: '', env: 'AQ_CHAIN', description: 'subtensor node (ws:// or wss://) to set weights on, once a tempo, on a loop of their own; empty: write them to weights.json only' },
  netuid: { type: 'number', default: 0, min: 0, max: 65535, env: 'AQ_NETUID', description: 'subnet to set weights on (with --chain)' },
  announce: { type: 'string', default: '', env: 'AQ_ANNOUNCE', description: 'with --chain: the public IP:port trainers reach this coordinator at, announced on chain with serve_axon (default: --listen when it names a routable IP)' },
  'weights-mode': { type: 'string', default: 'auto', choices: ['auto', 'set', 'crv2', 'crv3', 'crv4'], env: 'AQ_WEIGHTS_MODE', description: 'how weights go on chain; auto: set_weights, or with commit-reveal on, the timelocked commit the runtime has (CRv4, else CRv3), else CRv2' },
  'weights-poll-ms': { type: 'number', default: 6000, min: 100, max: 600_000, description: 'how often the weights loop reads the chain' },
  'block-time': { type: 'number', default: 12, min: 0.1, max: 600, description: 'seconds a block of the chain takes (for the drand round of timelocked commits)' },
  'final-weights-wait-s': { type: 'number', default: 600, min: 0, max: 86_400, description: 'with --exit-when-done, how long to wait for the chain to take the final scores before exiting' },
  ...HOTKEY_OPTIONS,
  out: { type: 'string', default: 'out/coordinator', env: 'AQ_OUT', description: 'folder for the final model (TF.js) and the round history' },
  'exit-when-done': { type: 'boolean', default: false, description: 'exit once every job (the built-in one and those submitted) has ended' },
  ...metricsOptions(9460),
  auth: { type: 'string', default: 'open', choices: ['open', 'signed'], env: 'AQ_AUTH', description: 'signed: every request must carry a hotkey signature, timestamp and nonce (UNAUTHENTICATED otherwise), and the hotkey must be admitted by --allowlist or, with --chain, the subnet\'s metagraph (PERMISSION_DENIED otherwise); open: no signatures (loopback and tests)' },
  allowlist: { type: 'string', default: '', env: 'AQ_ALLOWLIST', description: 'file of admitted hotkeys: an SS58 address a line, optionally followed by roles (trainer, dataset, researcher)' },
  'lease-key-uri': { type: 'string', default: '', env: 'AQ_LEASE_KEY_URI', description: 'secret URI of the key that signs shard leases (default: the validator hotkey with --chain, else a new key each start); never printed' },
  'auth-max-skew': { type: 'number', default: 60, min: 1, max: 3600, description: 'seconds a signed request\'s timestamp may be from this clock' },
  'max-streams-per-connection': { type: 'number', default: 100, min: 4, max: 10_000, description: 'most concurrent calls one connection may open (HTTP/2 max concurrent streams)' },
  'max-calls-per-node': { type: 'number', default: 32, min: 2, max: 10_000, description: 'with --auth signed: most calls one hotkey may have in progress at once (RESOURCE_EXHAUSTED beyond)' },
  'max-buffered-mib': { type: 'number', default: 256, min: 16, max: 65_536, description: 'MiB of incomplete messages all connections together may hold (the stream holding most is reset beyond)' },
  'max-buffered-mib-per-connection': { type: 'number', default: 16, min: 8, max: 65_536, description: 'MiB of incomplete messages one connection may hold (the stream that passes it is reset)' },
  'message-deadline-s': { type: 'number', default: 60, min: 1, max: 3600, description: 'longest one message (a 4 MiB chunk at most) may take to arrive once its first byte has' },
  'max-upload-mib': { type: 'number', default: 256, min: 16, max: 65_536, description: 'MiB of updates all trainers together may have in flight (an upload past it is refused with RESOURCE_EXHAUSTED before a byte is taken; at most --max-buffered-mib, since the uploads let in may all send at once); masked inputs wait apart until whole (--spool-memory-mib), plaintext updates in memory' },
  'mask-threads': { type: 'number', default: 0, min: 0, max: 256, description: `threads that add masked inputs into their groups' sums and expand masks when unmasking (0: the machine's cores, at most ${DEFAULT_MASK_THREADS}; each holds about 30 MiB)` },
  'spool-memory-mib': { type: 'number', default: 128, min: 0, max: 65_536, description: 'MiB of masked inputs held in memory until each is whole and folded into its group\'s sum; past it they wait in files in <out>/uploads (0: always files)' },
  'max-sum-mib': { type: 'number', default: 512, min: 0, max: 65_536, description: 'MiB of memory secure groups\' running sums may take; a round whose groups need more keeps them in files in <out>/sums (0: always files)' },
  'data-listen': { type: 'string', default: 'auto', env: 'AQ_DATA_LISTEN', description: 'host:port of the data plane, a gRPC server on a thread of its own that serves the round\'s model and takes trainers\' updates, so that their bytes do not hold the event loop answering heartbeats and long polls; trainers learn its port when they register and reach it on the host they reached --listen at (auto: --listen\'s host, a free port; name one that your firewall lets through on a public validator; off: both go to --listen, where trainers that cannot reach the data plane go too)' },
  'upload-idle-s': { type: 'number', default: 30, min: 1, max: 3600, description: 'longest an upload may go without a chunk before it is ended' },
  ...SERVER_TLS_OPTIONS,
  ...LOG_OPTIONS,
} as const satisfies OptionTable;

/** `--announce` as host and port (an IP, since the chain stores addresses). */
function announceOf(value: string): { host: string; port: number } | null {
  if (!value) return null;
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(value);
  if (!m || !isIP(m[1]!) || !(Number(m[2]) > 0 && Number(m[2]) < 65536)) throw new ConfigError('announce', 'IP:port (or [IPv6]:port), the public address trainers reach', JSON.stringify(value));
  if (m[1] === '127.0.0.1' || m[1] === '::1') throw new ConfigError('announce', 'an address other than 127.0.0.1 and ::1 (the chain refuses those)', JSON.stringify(value));
  return { host: m[1]!, port: Number(m[2]) };
}

/** The resolved coordinator configuration. */
export interface CoordinatorConfig extends LogConfig, MetricsConfig, ServerTlsConfig {
  listen: string;
  /** Where the data plane listens (`--data-listen`); null: updates go to `listen`. */
  dataListen: string | null;
  /** The built-in job (null with --job false). */
  job: JobConfig | null;
  /** Budgets every job's model must fit. */
  budget: ModelBudget;
  /** Most resident memory a job's model process may take, in bytes. */
  modelMemoryBytes: number;
  /** The TF.js backend each job's model process selects. */
  modelBackend: BackendName;
  /** Most jobs pending or running at once. */
  maxActiveJobs: number;
  heartbeatIntervalMs: number;
  liveTimeoutMs: number;
  out: string;
  /** Where weights go on chain; null: weights.json only. */
  chain: { url: string; netuid: number; hotkey: HotkeySource; announce: { host: string; port: number } | null; mode: 'auto' | 'set' | 'crv2' | 'crv3' | 'crv4'; pollMs: number; blockTimeSeconds: number; finalWaitMs: number } | null;
  exitWhenDone: boolean;
  /** Secret URI of the lease key ('' : the validator hotkey, or a key of this run). */
  leaseKeyUri: string;
  /** Signed requests and admission, or null for an open server. */
  auth: { allowlist: string; maxSkewMs: number } | null;
  /** What one peer may make the coordinator hold (docs/operations.md, "Limits on what a peer may send"). */
  limits: PeerLimits;
}

/** Bounds on what peers may make the coordinator hold. */
export interface PeerLimits {
  maxStreamsPerConnection: number;
  maxCallsPerNode: number;
  bufferedBytes: number;
  bufferedBytesPerConnection: number;
  messageDeadlineMs: number;
  uploadBytes: number;
  /** Memory secure groups' running sums may take before they go to files. */
  sumBytes: number;
  /** Masked inputs held in memory until folded, at most (`--spool-memory-mib`); beyond, in files. */
  spoolMemoryBytes: number;
  /** Mask threads (`--mask-threads`, resolved). */
  maskThreads: number;
  uploadIdleMs: number;
}

const MIB = 1 << 20;

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
  if (o.chain && !/^wss?:\/\//.test(o.chain)) throw new ConfigError('chain', 'a ws:// or wss:// URL', JSON.stringify(o.chain));
  const hotkey = hotkeySourceOf(o, env);
  if (o.chain && !hotkey) throw new ConfigError('hotkey-uri', 'the validator hotkey (AQ_HOTKEY_URI, --hotkey-file or --wallet.name) when --chain is given', 'nothing');
  if (!isId(o['job-id'])) throw new ConfigError('job-id', ID_RULE, JSON.stringify(o['job-id']));
  const job = resolveJobConfig(o, { jobId: o['job-id'], model, metric: '', validationSeed: o['validation-seed'] }, {
    name: (option) => `--${option}`,
    fail: (option, expected, got) => { throw new ConfigError(option, expected, got); },
  });
  if (o['max-buffered-mib-per-connection'] > o['max-buffered-mib']) {
    throw new ConfigError('max-buffered-mib-per-connection', `at most --max-buffered-mib (${o['max-buffered-mib']})`, String(o['max-buffered-mib-per-connection']));
  }
  if (!Number.isInteger(o['mask-threads'])) throw new ConfigError('mask-threads', 'a whole number of threads (0: the default)', String(o['mask-threads']));
  // Admitted uploads send their chunks at once: past the guard's total, it would reset honest ones.
  if (o['max-upload-mib'] > o['max-buffered-mib']) {
    throw new ConfigError('max-upload-mib', `at most --max-buffered-mib (${o['max-buffered-mib']}): the uploads let in may all be sending at once`, String(o['max-upload-mib']));
  }
  const dataListen = o['data-listen'] === 'off' ? null : o['data-listen'] === 'auto' ? `${o.listen.slice(0, o.listen.lastIndexOf(':'))}:0` : o['data-listen'];
  if (dataListen && !/^[^:]+:\d+$/.test(dataListen)) throw new ConfigError('data-listen', 'host:port, auto or off', JSON.stringify(o['data-listen']));
  if (o.allowlist && o.auth !== 'signed') throw new ConfigError('allowlist', 'nothing unless --auth signed (an open server admits everyone)', JSON.stringify(o.allowlist));
  return Object.freeze({
    listen: o.listen,
    dataListen,
    job: o.job ? job : null,
    budget: Object.freeze({ maxParams: o['max-params'], maxFlops: o['max-flops'], maxActivationBytes: o['max-activation-bytes'] }),
    modelMemoryBytes: o['max-model-memory-mib'] * 2 ** 20,
    modelBackend: o['model-backend'] as BackendName,
    maxActiveJobs: o['max-active-jobs'],
    heartbeatIntervalMs: o['heartbeat-interval-ms'],
    liveTimeoutMs: o['live-timeout-ms'],
    out: path.resolve(o.out),
    chain: o.chain && hotkey ? Object.freeze({
      url: o.chain, netuid: o.netuid, hotkey, announce: announceOf(o.announce), mode: o['weights-mode'] as 'auto' | 'set' | 'crv2' | 'crv3' | 'crv4', pollMs: o['weights-poll-ms'],
      blockTimeSeconds: o['block-time'], finalWaitMs: o['final-weights-wait-s'] * 1000,
    }) : null,
    exitWhenDone: o['exit-when-done'],
    ...metricsConfigOf(o),
    ...serverTlsOf(o),
    leaseKeyUri: o['lease-key-uri'],
    limits: Object.freeze({
      maxStreamsPerConnection: o['max-streams-per-connection'], maxCallsPerNode: o['max-calls-per-node'],
      bufferedBytes: o['max-buffered-mib'] * MIB, bufferedBytesPerConnection: o['max-buffered-mib-per-connection'] * MIB,
      messageDeadlineMs: o['message-deadline-s'] * 1000, uploadBytes: o['max-upload-mib'] * MIB, uploadIdleMs: o['upload-idle-s'] * 1000,
      sumBytes: o['max-sum-mib'] * MIB, spoolMemoryBytes: o['spool-memory-mib'] * MIB,
      maskThreads: resolveMaskThreads(o['mask-threads']),
    }),
    auth: o.auth === 'signed' ? Object.freeze({ allowlist: o.allowlist ? path.resolve(o.allowlist) : '', maxSkewMs: o['auth-max-skew'] * 1000 }) : null,
    ...logConfigOf(o),
  });
}
