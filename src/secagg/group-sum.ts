/**
 * Where a SecAgg+ group's running sum lives while masked inputs arrive: in shared memory, or,
 * when the round's groups together would take more memory than the coordinator allows them
 * (`--max-sum-mib`), in a file of its own that each input is added into piece by piece. A
 * group's words come into memory only to be unmasked, one group at a time, so a round's memory
 * is one group's vector however many groups it has. Masked words reveal nothing alone, on disk
 * as on the wire.
 */
import fs from 'node:fs';
import path from 'node:path';
import { recycleWords, sharedWords } from './mask-pool.js';
import { addWordsInto } from '../crypto/index.js';

/** Words added at a time into a file sum. */
const FILE_PIECE_WORDS = 1 << 20;
const scratch = new Uint32Array(FILE_PIECE_WORDS);

/** A group's running sum mod 2^32: in memory or in a file. */
export type SumWords = MemorySum | FileSum;

/** What either kind of sum does. */
interface GroupSum {
  readonly length: number;
  /** Adds `piece` (mod 2^32) at word `at`. */
  add(piece: Uint32Array, at: number): void;
  /** The whole sum in shared memory, where mask threads can unmask it (a file's read in once, in libuv's pool). */
  read(): Promise<Uint32Array>;
  /** A copy of the words as they stand (audits and tests). */
  copy(): Uint32Array;
  /**
   * Lets go of the words (memory back, file removed). `recycle`: nothing holds a view of them
   * any more (the group's sum was consumed), so their memory may serve the next sum.
   */
  release(recycle?: boolean): void;
}

/** A sum in shared memory. */
export class MemorySum implements GroupSum {
  private words: Uint32Array;

  constructor(readonly length: number) {
    this.words = sharedWords(length);
  }

  add(piece: Uint32Array, at: number): void {
    addWordsInto(this.words, at, piece, 1);
  }

  /** The words, where mask threads add inputs into them. */
  load(): Uint32Array {
    return this.words;
  }

  read(): Promise<Uint32Array> {
    return Promise.resolve(this.words);
  }

  copy(): Uint32Array {
    return new Uint32Array(this.words);
  }

  release(recycle = false): void {
    const words = this.words;
    this.words = new Uint32Array(0);
    if (recycle) recycleWords(words);
  }
}

/** A sum in a file (zeros to start: a sparse file of the sum's size). */
export class FileSum implements GroupSum {
  private fd: number | null;
  private loaded: Uint32Array | null = null;

  constructor(readonly path: string, readonly length: number) {
    this.fd = fs.openSync(path, 'wx+', 0o600);
    try {
      fs.ftruncateSync(this.fd, length * 4);
    } catch (err) {
      this.release();
      throw err;
    }
  }

  add(piece: Uint32Array, at: number): void {
    const fd = this.open();
    // One buffer for every file sum: additions made here (not handed to a mask thread, see
    // MaskPool.foldIntoFile) run one at a time, to the end, on the calling thread.
    const buf = scratch;
    const bytes = new Uint8Array(buf.buffer);
    for (let done = 0; done < piece.length;) {
      const n = Math.min(buf.length, piece.length - done);
      const pos = (at + done) * 4;
      readFully(fd, bytes, n * 4, pos, this.path);
      addWordsInto(buf, 0, piece.subarray(done, done + n), 1);
      writeFully(fd, bytes, n * 4, pos, this.path);
      done += n;
    }
  }

  async read(): Promise<Uint32Array> {
    if (this.loaded) return this.loaded;
    this.open();
    // A handle of its own: a release meanwhile closes the sum's descriptor, not this one.
    const words = sharedWords(this.length);
    const into = new Uint8Array(words.buffer, words.byteOffset, this.length * 4);
    const file = await fs.promises.open(this.path, 'r');
    try {
      for (let got = 0; got < into.length;) {
        const { bytesRead } = await file.read(into, got, into.length - got, got);
        if (bytesRead <= 0) throw new Error(`${this.path}: read ${got} of ${into.length} bytes at 0`);
        got += bytesRead;
      }
    } finally {
      await file.close();
    }
    this.open();
    this.loaded ??= words;
    return this.loaded;
  }

  copy(): Uint32Array {
    if (this.loaded) return new Uint32Array(this.loaded);
    const words = new Uint32Array(this.length);
    readFully(this.open(), new Uint8Array(words.buffer), this.length * 4, 0, this.path);
    return words;
  }

  release(recycle = false): void {
    if (recycle && this.loaded) recycleWords(this.loaded);
    this.loaded = null;
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
    // Freeing the file's blocks is the kernel's work, not the event loop's. One left behind (a
    // failure) is removed with its directory when the coordinator starts again (SumStorage).
    fs.rm(this.path, { force: true }, () => {});
  }

  private open(): number {
    if (this.fd === null) throw new Error(`${this.path}: the group's sum was released`);
    return this.fd;
  }
}

function readFully(fd: number, into: Uint8Array, bytes: number, pos: number, file: string): void {
  for (let got = 0; got < bytes;) {
    const n = fs.readSync(fd, into, got, bytes - got, pos + got);
    if (n <= 0) throw new Error(`${file}: read ${got} of ${bytes} bytes at ${pos}`);
    got += n;
  }
}

function writeFully(fd: number, from: Uint8Array, bytes: number, pos: number, file: string): void {
  for (let put = 0; put < bytes;) {
    const n = fs.writeSync(fd, from, put, bytes - put, pos + put);
    if (n <= 0) throw Object.assign(new Error(`${file}: wrote ${put} of ${bytes} bytes at ${pos}`), { code: 'ENOSPC' });
    put += n;
  }
}

/**
 * The memory all rounds' group sums may take in one process, and the directory sums go to past
 * it. A round takes memory for all its groups at once, or none (its groups then go to files).
 */
export class SumStorage {
  private held = 0;

  constructor(readonly dir: string, readonly memoryBytes: number) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
  }

  /** Bytes of group sums in memory now. */
  get heldBytes(): number {
    return this.held;
  }

  /**
   * Sums for `groups` groups of `length` words each, named by `label`: in memory when they fit
   * beside what other rounds hold, else in files. `release` gives all of it back (once).
   */
  take(label: string, groups: string[], length: number): { sums: Map<string, SumWords>; inMemory: boolean; release: () => void } {
    const bytes = groups.length * length * 4;
    const inMemory = this.held + bytes <= this.memoryBytes;
    const sums = new Map<string, SumWords>();
    if (inMemory) {
      this.held += bytes;
      for (const g of groups) sums.set(g, new MemorySum(length));
    } else {
      const safe = label.replace(/[^\w.-]/g, '_');
      try {
        for (const g of groups) sums.set(g, new FileSum(path.join(this.dir, `${safe}-${g.replace(/[^\w.-]/g, '_')}.sum`), length));
      } catch (err) {
        for (const made of sums.values()) made.release();
        throw err;
      }
    }
    let released = false;
    return {
      sums, inMemory,
      release: () => {
        if (released) return;
        released = true;
        for (const s of sums.values()) s.release();
        if (inMemory) this.held -= bytes;
      },
    };
  }
}
