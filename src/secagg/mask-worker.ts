/**
 * Worker thread of the mask pool: applies a list of masks to its word range of a shared
 * vector. Ranges of different workers are disjoint, so no locking is needed.
 */
import { parentPort } from 'node:worker_threads';
import v8 from 'node:v8';
import vm from 'node:vm';
import { applyMasks } from '../crypto/index.js';

/**
 * A full collection of this thread's heap. Each job brings the vector's SharedArrayBuffer into
 * this thread; the memory behind it is freed only once every thread that saw it has collected
 * its handle, and a thread that allocates little collects seldom on its own (V8 does not count
 * shared memory toward collecting), so the vectors it saw would stay resident meanwhile.
 */
v8.setFlagsFromString('--expose-gc');
const collect = vm.runInNewContext('gc') as () => void;

interface Job {
  id: number;
  sab: SharedArrayBuffer;
  byteOffset: number;
  length: number;
  start: number;
  end: number;
  masks: { seed: Uint8Array; sign: 1 | -1 }[];
}

parentPort!.on('message', (job: Job) => {
  // Once this job's handles are gone.
  setImmediate(collect);
  try {
    const target = new Uint32Array(job.sab, job.byteOffset, job.length).subarray(job.start, job.end);
    applyMasks(target, job.masks, job.start);
    parentPort!.postMessage({ id: job.id });
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: (err as Error).message });
  }
});
