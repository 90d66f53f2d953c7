/**
 * Trainer node options: every flag, its default and its environment variable, parsed once into
 * a frozen config.
 */
import os from 'node:os';
import { parseOptions, type OptionTable } from '../src/util/index.js';
import { ConfigError } from '../src/errors.js';
import { BACKENDS } from '../src/model/index.js';
import { HOTKEY_OPTIONS, hotkeySourceOf, LOG_OPTIONS, logConfigOf, type LogConfig, metricsOptions, metricsConfigOf, CLIENT_TLS_OPTIONS, clientTlsOf, type MetricsConfig, type ClientTlsConfig, SESSION_KEY_OPTIONS, DISCOVERY_OPTIONS, discoveryOf, type DiscoveryConfig } from '../src/node/index.js';
import type { HotkeySource } from '../src/chain/index.js';

export const TRAINER_OPTIONS = {
  coordinator: { type: 'string', default: '', env: 'AQ_COORDINATOR', description: 'coordinator host:port of a private federation (default 127.0.0.1:50051 without --chain)' },
  ...DISCOVERY_OPTIONS,
  'peer-allowlist': { type: 'string', default: '', env: 'AQ_PEER_ALLOWLIST', description: 'with a hotkey: file of the hotkeys (SS58, one a line, as the coordinator\'s --allowlist) this trainer accepts as peers in a secure group; with --chain the subnet\'s registered hotkeys are accepted too' },
  'node-id': { type: 'string', default: '', env: 'AQ_NODE_ID', description: 'this trainer\'s id (default: trainer-<hostname>-<pid>)' },
  backend: { type: 'string', default: 'auto', choices: BACKENDS, env: 'AQ_BACKEND', description: 'TF.js backend; auto picks tensorflow (if installed), webgpu, wasm, cpu' },
  capacity: { type: 'number', default: 0, min: 0, description: 'samples a second this trainer advertises (0: what a short self-benchmark at start measures on the pose CNN; the coordinator refines it from what it observes)' },
  'wait-ms': { type: 'number', default: 10_000, min: 0, max: 30_000, description: 'how long a task request may wait at the coordinator' },
  'replay-steps': { type: 'boolean', default: true, env: 'AQ_REPLAY_STEPS', description: 'on webgpu, record a training step once and replay it (false: every kernel of every step through TF.js, several times slower)' },
  'webgpu-software': { type: 'boolean', default: false, env: 'AQ_WEBGPU_SOFTWARE', description: 'run webgpu on Mesa\'s llvmpipe instead of a GPU (slow; for tests of the WGSL kernels on machines without a GPU)' },
  threads: { type: 'number', default: 0, min: 0, max: 256, env: 'AQ_THREADS', description: 'threads that share each training batch on a CPU backend (wasm, cpu): 0 uses every core this process may use; each model and batch size is timed both ways once and the faster kept (GPU backends train on one thread)' },
  'delay-per-batch-ms': { type: 'number', default: 0, min: 0, max: 60_000, description: 'sleep after each batch, to simulate a slow device (stragglers in tests and demos)' },
  ...metricsOptions(9462),
  ...CLIENT_TLS_OPTIONS,
  ...HOTKEY_OPTIONS,
  ...SESSION_KEY_OPTIONS,
  ...LOG_OPTIONS,
} as const satisfies OptionTable;

/** The resolved trainer configuration. */
export interface TrainerConfig extends LogConfig, MetricsConfig, ClientTlsConfig {
  /** One coordinator (a private federation); '' with discovery. */
  coordinator: string;
  /** The validators found on chain, when --chain is given without --coordinator. */
  discovery: DiscoveryConfig | null;
  /** Hotkeys accepted as secure-group peers ('' : any, or the subnet's with --chain). */
  peerAllowlist: string;
  nodeId: string;
  backend: string;
  /** webgpu on Mesa's llvmpipe (tests without a GPU). */
  webGpuSoftware: boolean;
  /** On webgpu, training steps recorded once and replayed. */
  replaySteps: boolean;
  capacity: number;
  waitMs: number;
  delayPerBatchMs: number;
  /** Threads sharing each batch on a CPU backend (0: every core). */
  threads: number;
  /** The hotkey that signs requests (null: unsigned); with one, the node id is its address. */
  hotkey: HotkeySource | null;
}

export const TRAINER_USAGE = 'actiquest trainer [options]';
export const TRAINER_SUMMARY = 'Trains the coordinator\'s model on shards streamed from dataset nodes and uploads the weight update.';

/** Parses flags and environment into a frozen config. */
export function loadTrainerConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): TrainerConfig {
  const o = parseOptions(TRAINER_OPTIONS, argv, env, TRAINER_USAGE, TRAINER_SUMMARY);
  const hotkey = hotkeySourceOf(o, env);
  // With a hotkey the id is its address, settled when the key is opened (nodeIdentity).
  const nodeId = o['node-id'] || (hotkey ? '' : `trainer-${os.hostname()}-${process.pid}`);
  if (nodeId && !/^[\w.:-]{1,128}$/.test(nodeId)) throw new ConfigError('node-id', 'letters, digits, . _ : - (1 to 128)', JSON.stringify(nodeId));
  const discovery = o.coordinator ? null : discoveryOf(o);
  const coordinator = o.coordinator || (discovery ? '' : '127.0.0.1:50051');
  if (coordinator && !/^[^\s:]+:\d{1,5}$/.test(coordinator)) throw new ConfigError('coordinator', 'host:port', JSON.stringify(coordinator));
  if (discovery && !hotkey) throw new ConfigError('hotkey-uri', 'the trainer\'s hotkey (AQ_HOTKEY_URI, --hotkey-file or --wallet.name) with --chain: validators know miners by it', 'nothing');
  if (o['peer-allowlist'] && !hotkey) throw new ConfigError('peer-allowlist', 'a hotkey too (peers are checked by their hotkey signatures)', 'no hotkey');
  return Object.freeze({
    coordinator,
    discovery,
    peerAllowlist: o['peer-allowlist'],
    nodeId,
    backend: o.backend,
    webGpuSoftware: o['webgpu-software'],
    replaySteps: o['replay-steps'],
    capacity: o.capacity,
    waitMs: o['wait-ms'],
    delayPerBatchMs: o['delay-per-batch-ms'],
    threads: o.threads,
    ...metricsConfigOf(o),
    ...clientTlsOf(o),
    hotkey,
    ...logConfigOf(o),
  });
}
