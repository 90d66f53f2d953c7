/**
 * The shard store: generates a node's shards once into files (atomically: temp file, then
 * rename), records each one's sha256 in `manifest.json`, and reads them back for serving.
 * A store whose manifest matches the requested data is reused as it is. With `coco`, the
 * shards are imported COCO person crops (src/tasks/pose/coco.ts) instead of rendered ones;
 * with `images`, a folder of unlabelled images labelled by a pose teacher
 * (src/tasks/pose/autolabel.ts), and the manifest says which teacher and threshold made them.
 * `shards` is then ignored (there are as many as the people fill).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { sha256, type ShardInfo } from '../src/wire/index.js';
import { encodeShard, getTask, importCoco, type Samples } from '../src/tasks/index.js';
import { autoLabel, type TeacherName } from '../src/tasks/autolabel.js';
import { selectBackend } from '../src/model/index.js';
import { InvalidFieldError, ShardNotFoundError } from '../src/errors.js';
import type { Logger } from '../src/util/index.js';

/** What the store is asked to hold. */
export interface ShardStoreOptions {
  dir: string;
  task: string;
  seed: string;
  shards: number;
  samplesPerShard: number;
  alpha: number;
  log: Logger;
  signal?: AbortSignal;
  coco?: { annotations: string; images?: string };
  images?: { dir: string; teacher: TeacherName; threshold: number };
}

/** How auto-labelled shards were made. */
interface LabelsRecord {
  images: string;
  /** The teacher and the least score of a labelled keypoint. */
  teacher: string;
  threshold: number;
  imagesRead: number;
  people: number;
  noPerson: number;
  rejected: { file: string; reason: string }[];
}

interface ManifestFile {
  task: string;
  seed: string;
  alpha: number;
  samplesPerShard: number;
  /** The imported COCO annotation file, when the shards came from one. */
  coco?: string;
  /** Auto-labelled from a folder of images. */
  labels?: LabelsRecord;
  shards: (ShardInfo & { file: string })[];
}

/** A node's immutable shards on disk. */
export interface ShardStore {
  readonly task: string;
  readonly shards: readonly ShardInfo[];
  /** The bytes of a shard file. */
  read(shardId: string): Promise<Buffer>;
}

/** Opens the store at `options.dir`, generating whatever is missing. */
export async function openShardStore(options: ShardStoreOptions): Promise<ShardStore> {
  const { dir, log } = options;
  await fs.mkdir(dir, { recursive: true });
  const manifestPath = path.join(dir, 'manifest.json');
  let manifest: ManifestFile | null = null;
  try {
    manifest = JSON.parse(await fs.readFile(manifestPath, 'utf8')) as ManifestFile;
  } catch {
    manifest = null;
  }
  const matches = manifest !== null && manifest.task === options.task && manifest.seed === options.seed
    && manifest.alpha === options.alpha && manifest.samplesPerShard === options.samplesPerShard
    && (options.coco ? manifest.coco === options.coco.annotations
      : options.images ? manifest.labels?.images === options.images.dir && manifest.labels.threshold === options.images.threshold && manifest.labels.teacher.startsWith(`${options.images.teacher} `)
        : manifest.coco === undefined && manifest.labels === undefined && manifest.shards.length === options.shards);
  if (!matches || !(await allPresent(dir, manifest!))) {
    manifest = await generate(options);
    const tmp = `${manifestPath}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(manifest, null, 1));
    await fs.rename(tmp, manifestPath);
  } else {
    log.info('shards reused', { dir, shards: manifest!.shards.length });
  }
  const byId = new Map(manifest!.shards.map((s) => [s.shardId, s]));
  return {
    task: options.task,
    shards: manifest!.shards.map(({ file: _file, ...info }) => info),
    async read(shardId: string): Promise<Buffer> {
      const entry = byId.get(shardId);
      if (!entry) throw new ShardNotFoundError(shardId);
      return fs.readFile(path.join(dir, entry.file));
    },
  };
}

async function allPresent(dir: string, manifest: ManifestFile): Promise<boolean> {
  for (const s of manifest.shards) {
    try {
      const st = await fs.stat(path.join(dir, s.file));
      if (st.size !== s.sizeBytes) return false;
    } catch {
      return false;
    }
  }
  return true;
}

async function generate(options: ShardStoreOptions): Promise<ManifestFile> {
  const task = getTask(options.task);
  const started = performance.now();
  const shards: ManifestFile['shards'] = [];
  let imported: Samples[] | null = null;
  if (options.coco) {
    const result = await importCoco({ ...options.coco, size: task.inputShape[0]!, samplesPerShard: options.samplesPerShard },
      (people) => { if (people % 500 === 0) options.log.info('importing COCO people', { people }); });
    options.log.info('COCO imported', { people: result.people, skipped: result.skipped, shards: result.shards.length });
    imported = result.shards;
    if (imported.length === 0) throw new InvalidFieldError('coco annotations', 'at least one person with 5 labelled keypoints', 'none');
  }
  let labels: LabelsRecord | undefined;
  if (options.images) {
    await selectBackend('wasm');
    const { dir, teacher, threshold } = options.images;
    options.log.info('labelling images', { dir, teacher, threshold });
    const result = await autoLabel({ images: dir, teacher, threshold, size: task.inputShape[0]!, samplesPerShard: options.samplesPerShard, signal: options.signal },
      (images, people) => { if (images % 100 === 0) options.log.info('labelling images', { images, people }); });
    for (const r of result.rejected) options.log.warn('image rejected', r);
    labels = { images: dir, teacher: result.teacher, threshold, imagesRead: result.images, people: result.people, noPerson: result.noPerson.length, rejected: result.rejected };
    options.log.info('images labelled', { images: result.images, people: result.people, noPerson: result.noPerson.length, rejected: result.rejected.length, shards: result.shards.length, teacher: result.teacher });
    imported = result.shards;
    if (imported.length === 0) throw new InvalidFieldError('images', `at least one image with a person the teacher finds (${result.images} read, ${result.rejected.length} rejected)`, 'none');
  }
  const count = imported ? imported.length : options.shards;
  for (let i = 0; i < count; i++) {
    if (options.signal?.aborted) throw options.signal.reason;
    const samples = imported ? imported[i]! : task.generateShard({ seed: options.seed, shards: options.shards, samplesPerShard: options.samplesPerShard, alpha: options.alpha }, i);
    const bytes = encodeShard({ task: task.name, numSamples: samples.count, sampleShape: task.sampleShape, numClasses: task.classes.length, ...(task.keypoints > 0 ? { keypoints: task.keypoints } : {}) }, samples);
    const shardId = `${options.seed}-${String(i).padStart(4, '0')}`;
    const file = `${shardId}.aqs`;
    const tmp = path.join(options.dir, `${file}.tmp`);
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, path.join(options.dir, file));
    shards.push({ shardId, numSamples: samples.count, sha256: sha256(bytes).toString('hex'), sizeBytes: bytes.length, file });
    if ((i + 1) % 10 === 0 || i + 1 === count) {
      options.log.info('generating shards', { done: i + 1, of: count });
    }
  }
  options.log.info('shards written', { dir: options.dir, shards: shards.length, seconds: +((performance.now() - started) / 1000).toFixed(2) });
  return { task: task.name, seed: options.seed, alpha: options.alpha, samplesPerShard: options.samplesPerShard, ...(options.coco ? { coco: options.coco.annotations } : {}), ...(labels ? { labels } : {}), shards };
}
