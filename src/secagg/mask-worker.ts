/**
 * Worker thread of the mask pool: applies a list of masks to its word range of a shared
 * vector (ranges of different workers are disjoint, so no locking is needed), or adds a masked
 * input's bytes (handed over, or read from its spool file) into a group's sum, in shared memory
 * or in a file (the pool gives one sum's additions one at a time).
 */
import { parentPort } from 'node:worker_threads';
import v8 from 'node:v8';
import vm from 'node:vm';
import { addBytesInto, addFileInto, addIntoFile, applyMasks } from '../crypto/index.js';

/**
 * A full collection of this thread's heap. Each job brings the vector's SharedArrayBuffer into
 * this thread; the memory behind it is freed only once every thread that saw it has collected
 * its handle, and a thread that allocates little collects seldom on its own (V8 does not count
 * shared memory toward collecting), so the vectors it saw would stay resident meanwhile.
 */
v8.setFlagsFromString('--expose-gc');
const collect = vm.runInNewContext('gc') as () => void;

type Job = MaskJob | FoldJob | FoldFileJob | FoldIntoFileJob;

/** An input (chunks or its spool file) added into a sum kept in a file. */
interface FoldIntoFileJob {
  kind: 'fold-into-file';
  id: number;
  sumPath: string;
  length: number;
  source: Uint8Array[] | string;
}

interface FoldFileJob {
  kind: 'fold-file';
  id: number;
  sab: SharedArrayBuffer;
  byteOffset: number;
  length: number;
  path: string;
}

interface FoldJob {
  kind: 'fold';
  id: number;
  sab: SharedArrayBuffer;
  byteOffset: number;
  length: number;
  chunks: Uint8Array[];
}

interface MaskJob {
  kind: 'masks';
  id: number;
  sab: SharedArrayBuffer;
  byteOffset: number;
  length: number;
  start: number;
  end: number;
  masks: { seed: Uint8Array; sign: 1 | -1 }[];
}

/**
 * Collections at most this often, rather than one after every job: a round brings a thread a
 * job for every masked input of the groups it adds.
 */
const COLLECT_EVERY_MS = 100;
let collecting: NodeJS.Timeout | null = null;

parentPort!.on('message', (job: Job) => {
  // Once this job's handles (and those of the jobs that come meanwhile) are gone.
  collecting ??= setTimeout(() => {
    collecting = null;
    collect();
  }, COLLECT_EVERY_MS);
  try {
    if (job.kind === 'fold-into-file') {
      addIntoFile(job.sumPath, job.length, job.source);
    } else {
      const words = new Uint32Array(job.sab, job.byteOffset, job.length);
      if (job.kind === 'fold') addBytesInto(words, job.chunks);
      else if (job.kind === 'fold-file') addFileInto(words, job.path);
      else applyMasks(words.subarray(job.start, job.end), job.masks, job.start);
    }
    parentPort!.postMessage({ id: job.id });
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: (err as Error).message });
  }
});
