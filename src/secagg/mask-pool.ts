/**
 * Expanding and adding masks off the event loop: a pool of worker threads, each applying every
 * mask to its own slice of a SharedArrayBuffer-backed vector (AES-CTR can start at any block,
 * so slices are independent). Adding a masked input into its group's sum goes to one thread
 * too, the input's bytes handed over as they arrived or read there from its spool file. Small vectors are masked and added
 * inline, where a thread hop costs more than it saves.
 */
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { addBytesInto, addFileInto, addIntoFile, applyMasks } from '../crypto/index.js';
import { tsxApiUrl } from '../util/index.js';

/** A mask to add (1) or subtract (-1). */
export interface MaskJob {
  seed: Uint8Array;
  sign: 1 | -1;
}

/** Below this many words a vector is masked inline. */
export const INLINE_WORDS = 1 << 18;

/**
 * Shared vectors given back, by length, for the next vector of that length. V8 does not count
 * shared memory toward when to collect garbage: a SharedArrayBuffer let go of stays resident
 * until a collection that a small JS heap may not need for a long time (forty of 40 MB, each
 * dropped for the next, kept 1.5 GiB resident). A round's group vectors are therefore given
 * back and used again, up to {@link SPARE_BYTES} kept.
 */
const spare = new Map<number, Uint32Array[]>();
const spareBuffers = new WeakSet<ArrayBufferLike>();
let spareBytes = 0;
/** The most bytes of shared vectors kept for reuse. */
export const SPARE_BYTES = 1 << 30;

/** A zeroed uint32 vector in shared memory, which the pool's threads can write. */
export function sharedWords(length: number): Uint32Array {
  const reused = spare.get(length)?.pop();
  if (!reused) return new Uint32Array(new SharedArrayBuffer(length * 4));
  spareBuffers.delete(reused.buffer);
  spareBytes -= reused.byteLength;
  return reused.fill(0);
}

/**
 * Gives back a vector {@link sharedWords} made, for a later one of its length. Nothing may read
 * or write it, or any view of it, afterwards.
 */
export function recycleWords(words: Uint32Array): void {
  const whole = words.buffer instanceof SharedArrayBuffer && words.byteOffset === 0 && words.byteLength === words.buffer.byteLength;
  if (!whole || words.length === 0 || spareBuffers.has(words.buffer) || spareBytes + words.byteLength > SPARE_BYTES) return;
  spareBuffers.add(words.buffer);
  spareBytes += words.byteLength;
  (spare.get(words.length) ?? spare.set(words.length, []).get(words.length)!).push(words);
}

/**
 * A chunk of at least OWN_MIN_BYTES whose ArrayBuffer is at most OWN_SLACK_BYTES larger owns
 * it: grpc-js gathers a message longer than one HTTP/2 frame (16 KiB) into a buffer of its own,
 * which holds the chunk's bytes and their protobuf header. Smaller chunks may share their
 * buffer with other messages (Node pools small buffers in 8 KiB), so they are copied.
 */
const OWN_MIN_BYTES = 64 << 10;
const OWN_SLACK_BYTES = 256;

function ownsItsMemory(c: Uint8Array): boolean {
  return c.buffer instanceof ArrayBuffer && c.byteLength >= OWN_MIN_BYTES && c.buffer.byteLength - c.byteLength < OWN_SLACK_BYTES;
}

/** A pool of mask threads. */
export class MaskPool {
  private workers: Worker[] | null = null;
  private nextId = 1;
  private nextFold = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

  /** `threads` defaults to the machine's available parallelism. */
  constructor(readonly threads = Math.max(1, os.availableParallelism())) {}

  private start(): Worker[] {
    if (this.workers) return this.workers;
    // The worker is TypeScript: load tsx's loader in the thread first, then the worker module
    // (Node 20 does not apply a worker's --import before loading its entry).
    const api = tsxApiUrl();
    const url = new URL('./mask-worker.ts', import.meta.url).href;
    const boot = `import(${JSON.stringify(api)}).then(({ tsImport }) => tsImport(${JSON.stringify(url)}, ${JSON.stringify(url)}))`;
    this.workers = Array.from({ length: this.threads }, () => {
      const w = new Worker(boot, { eval: true });
      w.unref();
      w.on('message', (m: { id: number; error?: string }) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error) p?.reject(new Error(m.error));
        else p?.resolve();
      });
      w.on('error', (err) => {
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
      return w;
    });
    return this.workers;
  }

  /** Applies `masks` to `target`; in threads when it is large and in shared memory. */
  async apply(target: Uint32Array, masks: readonly MaskJob[]): Promise<void> {
    if (masks.length === 0) return;
    if (target.length < INLINE_WORDS || !(target.buffer instanceof SharedArrayBuffer) || this.threads <= 1) {
      applyMasks(target, masks);
      return;
    }
    const workers = this.start();
    // Slices on 16-byte (AES block) boundaries.
    const per = Math.ceil(target.length / workers.length / 4) * 4;
    const jobs: Promise<void>[] = [];
    workers.forEach((w, i) => {
      const start = i * per;
      const end = Math.min(target.length, start + per);
      if (start >= end) return;
      const id = this.nextId++;
      jobs.push(new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject })));
      w.postMessage({
        kind: 'masks', id, sab: target.buffer, byteOffset: target.byteOffset, length: target.length, start, end,
        masks: masks.map((m) => ({ seed: Uint8Array.from(m.seed), sign: m.sign })),
      });
    });
    await Promise.all(jobs);
  }

  /**
   * Adds the words of `chunks`, taken end to end, into `target` (mod 2^32; see addBytesInto),
   * in one thread when `target` is large and in shared memory. The chunks are handed over: a
   * chunk whose memory is its own (an upload's message) is moved to the thread, not copied, and
   * is empty here afterwards; one that shares its memory (a slice of Node's buffer pool) is
   * copied. Two additions into one target must not overlap: the caller orders them.
   */
  async fold(target: Uint32Array, chunks: readonly Uint8Array[]): Promise<void> {
    if (this.inline(target)) {
      addBytesInto(target, chunks);
      return;
    }
    const handed = chunks.map((c) => (ownsItsMemory(c) ? c : c.slice()));
    await this.addInThread(target, { kind: 'fold', chunks: handed }, [...new Set(handed.map((c) => c.buffer as ArrayBuffer))]);
  }

  /**
   * Adds the words of the file at `path` into `target` (mod 2^32; see addFileInto), read and
   * added in one thread when `target` is large and in shared memory: the event loop neither
   * reads the file nor adds. Two additions into one target must not overlap: the caller orders them.
   */
  async foldFile(target: Uint32Array, path: string): Promise<void> {
    if (this.inline(target)) addFileInto(target, path);
    else await this.addInThread(target, { kind: 'fold-file', path });
  }

  /**
   * Adds a masked input, its chunks taken end to end or the file at `source`, into the sum of
   * `length` words kept in the file at `sumPath` (mod 2^32; see addIntoFile): read, added and
   * written back in one thread, so that the event loop does none of it; here when there are no
   * threads to spare. Chunks are handed over as {@link fold}'s are. Two additions into one sum
   * must not overlap: the caller orders them.
   */
  async foldIntoFile(sumPath: string, length: number, source: readonly Uint8Array[] | string): Promise<void> {
    if (this.threads <= 1) {
      addIntoFile(sumPath, length, source);
      return;
    }
    const handed = typeof source === 'string' ? source : source.map((c) => (ownsItsMemory(c) ? c : c.slice()));
    const transfer = typeof handed === 'string' ? [] : [...new Set(handed.map((c) => c.buffer as ArrayBuffer))];
    await this.inThread({ kind: 'fold-into-file', sumPath, length, source: handed }, transfer);
  }

  /** Whether an addition into `target` is done here: it is small, not shared, or there are no threads to spare. */
  private inline(target: Uint32Array): boolean {
    return target.length < INLINE_WORDS || !(target.buffer instanceof SharedArrayBuffer) || this.threads <= 1;
  }

  /** Runs one addition into `target` in the next thread in turn; resolves when it is done. */
  private addInThread(target: Uint32Array, job: { kind: 'fold'; chunks: Uint8Array[] } | { kind: 'fold-file'; path: string }, transfer: ArrayBuffer[] = []): Promise<void> {
    return this.inThread({ ...job, sab: target.buffer, byteOffset: target.byteOffset, length: target.length }, transfer);
  }

  /** Runs one addition in the next thread in turn; resolves when it is done. */
  private async inThread(job: object, transfer: ArrayBuffer[]): Promise<void> {
    const w = this.start()[this.nextFold++ % this.threads]!;
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    w.postMessage({ ...job, id }, transfer);
    await done;
  }

  /** Stops the threads. */
  async close(): Promise<void> {
    const ws = this.workers ?? [];
    this.workers = null;
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
