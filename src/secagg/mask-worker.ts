/**
 * Worker thread of the mask pool: applies a list of masks to its word range of a shared
 * vector. Ranges of different workers are disjoint, so no locking is needed.
 */
import { parentPort } from 'node:worker_threads';
import { applyMasks } from '../crypto/index.js';

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
  try {
    const target = new Uint32Array(job.sab, job.byteOffset, job.length).subarray(job.start, job.end);
    applyMasks(target, job.masks, job.start);
    parentPort!.postMessage({ id: job.id });
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: (err as Error).message });
  }
});
