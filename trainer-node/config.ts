/**
 * Trainer node options: every flag, its default and its environment variable, parsed once into
 * a frozen config.
 */
import path from 'node:path';
import os from 'node:os';
import { parseOptions, type OptionTable } from '../src/util/index.js';
import { ConfigError } from '../src/errors.js';
import { checkTlsOptions } from '../src/wire/index.js';
import { BACKENDS } from '../src/model/index.js';
import { HOTKEY_OPTIONS, hotkeySourceOf, LOG_OPTIONS, logConfigOf, type LogConfig } from '../src/node/index.js';
import type { HotkeySource } from '../src/chain/index.js';

export const TRAINER_OPTIONS = {
  coordinator: { type: 'string', default: '127.0.0.1:50051', env: 'AQ_COORDINATOR', description: 'coordinator host:port' },
  'node-id': { type: 'string', default: '', env: 'AQ_NODE_ID', description: 'this trainer\'s id (default: trainer-<hostname>-<pid>)' },
  backend: { type: 'string', default: 'auto', choices: BACKENDS, env: 'AQ_BACKEND', description: 'TF.js backend; auto picks tensorflow (if installed), webgpu, wasm, cpu' },
  capacity: { type: 'number', default: 1000, min: 0.001, description: 'samples a second this trainer expects to train (refined by the coordinator from what it observes)' },
  'wait-ms': { type: 'number', default: 10_000, min: 0, max: 30_000, description: 'how long a task request may wait at the coordinator' },
  'delay-per-batch-ms': { type: 'number', default: 0, min: 0, max: 60_000, description: 'sleep after each batch, to simulate a slow device (stragglers in tests and demos)' },
  'metrics-host': { type: 'string', default: '127.0.0.1', description: 'host of the Prometheus endpoint' },
  'metrics-port': { type: 'number', default: 9462, min: -1, max: 65535, env: 'AQ_METRICS_PORT', description: 'port of /metrics (0 picks one, -1 disables)' },
  'tls-ca': { type: 'string', default: '', env: 'AQ_TLS_CA', description: 'PEM CA certificate this node\'s clients trust; given, they connect with TLS only' },
  ...HOTKEY_OPTIONS,
  ...LOG_OPTIONS,
} as const satisfies OptionTable;

/** The resolved trainer configuration. */
export interface TrainerConfig extends LogConfig {
  coordinator: string;
  nodeId: string;
  backend: string;
  capacity: number;
  waitMs: number;
  delayPerBatchMs: number;
  metricsHost: string;
  metricsPort: number;
  tlsCa: string;
  /** The hotkey that signs requests (null: unsigned); with one, the node id is its address. */
  hotkey: HotkeySource | null;
}

export const TRAINER_USAGE = 'actiquest trainer [options]';
export const TRAINER_SUMMARY = 'Trains the coordinator\'s model on shards streamed from dataset nodes and uploads the weight update.';

/** Parses flags and environment into a frozen config. */
export function loadTrainerConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): TrainerConfig {
  const o = parseOptions(TRAINER_OPTIONS, argv, env, TRAINER_USAGE, TRAINER_SUMMARY);
  const hotkey = hotkeySourceOf(o);
  // With a hotkey the id is its address, settled when the key is opened (nodeIdentity).
  const nodeId = o['node-id'] || (hotkey ? '' : `trainer-${os.hostname()}-${process.pid}`);
  if (nodeId && !/^[\w.:-]{1,128}$/.test(nodeId)) throw new ConfigError('node-id', 'letters, digits, . _ : - (1 to 128)', JSON.stringify(nodeId));
  if (!/^[^\s:]+:\d{1,5}$/.test(o.coordinator)) throw new ConfigError('coordinator', 'host:port', JSON.stringify(o.coordinator));
  checkTlsOptions('', '', o['tls-ca']);
  return Object.freeze({
    coordinator: o.coordinator,
    nodeId,
    backend: o.backend,
    capacity: o.capacity,
    waitMs: o['wait-ms'],
    delayPerBatchMs: o['delay-per-batch-ms'],
    metricsHost: o['metrics-host'],
    metricsPort: o['metrics-port'],
    tlsCa: o['tls-ca'] ? path.resolve(o['tls-ca']) : '',
    hotkey,
    ...logConfigOf(o),
  });
}
