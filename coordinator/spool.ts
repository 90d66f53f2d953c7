/**
 * Masked inputs on their way into a group sum are held apart until whole: in memory as their
 * bytes arrive, while the bytes held by all inputs stay within a budget (`--spool-memory-mib`);
 * an input whose next chunk would pass it moves to disk (what it held is written to a file of
 * its own and let go, and its later chunks are appended there; the writes run in libuv's thread
 * pool, in order, so the event loop never waits on the disk). Once the whole input is in, its
 * writes done and its digest checked, it is folded into the group's running sum in a mask
 * thread (the chunks held in memory handed over, or the file's path, which the thread reads;
 * the sum may itself be in a file, which the thread updates), then let go (the file removed, in
 * the background). The
 * budget counts bytes received, not bytes announced: a thousand uploads that start together
 * hold little until their data comes, and most are folded before the budget fills. The
 * coordinator's memory thus stays the group sums, the budget and a piece, however many members
 * upload at once and however large the model. A masked input alone reveals nothing (its masks
 * are uniform), so its bytes on disk are no more sensitive than on the wire.
 *
 * An upload that ends early (cancelled, replaced, refused) leaves nothing in any sum: its bytes
 * are let go. Every write checks its byte count; a full disk fails the upload with
 * RESOURCE_EXHAUSTED (at its next chunk, or once its writes are awaited) and removes the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SpoolWriteError } from '../src/errors.js';

/** Bytes read back per piece when an input is folded. */
export const PIECE_BYTES = 4 << 20;

let readBuffer = new Uint8Array(PIECE_BYTES);

/** One upload's bytes until they are folded: appended to, read back in pieces, let go. */
export interface SpooledInput {
  /** Bytes appended so far. */
  readonly bytes: number;
  /**
   * Appends `data` (kept as given, or written out: the caller must not change it afterwards).
   * Writes to a file go on in the background; one that failed throws at a later append or
   * from {@link flush}.
   */
  append(data: Uint8Array): void;
  /** Resolves once every byte appended is where it is kept; rejects with a write's {@link SpoolWriteError}. */
  flush(): Promise<void>;
  /**
   * The bytes as consecutive little-endian 32-bit words, `pieceBytes` at a time, in one buffer
   * reused between pieces (each must be used before the next is asked for).
   */
  words(pieceBytes?: number): Generator<Uint32Array>;
  /** The whole input in memory (tests that look at what the coordinator received). */
  readAll(): Buffer;
  /**
   * The chunks as appended, given up to the caller (to be added into a sum in a mask thread), or
   * null when the input is in a file. Nothing else may be read of the input afterwards. Their
   * bytes count against the memory budget until `done` is called (once they are in the sum),
   * not when the input is removed: additions that fall behind fill the budget, and later uploads
   * go to files.
   */
  takeChunks(): TakenChunks | null;
  /**
   * The file the input is in, given up to the caller (to be read and added into a sum in a mask
   * thread), or null when the input is in memory; after {@link flush}. The file stays until its
   * `done` is called, not when the input is removed.
   */
  takeFile(): TakenFile | null;
  /** Lets the bytes go (once); resolves once a file is removed. */
  remove(): Promise<void>;
}

/** An input's file handed over, and what removes it. */
export interface TakenFile {
  path: string;
  bytes: number;
  done: () => void;
}

/** An input's chunks handed over, and what lets go of their bytes in the memory budget. */
export interface TakenChunks {
  chunks: Uint8Array[];
  done: () => void;
}

/** The buffer pieces are read into, at least `bytes` long. */
function pieceBuffer(bytes: number): Uint8Array {
  // One buffer for every input's pieces: folds run one at a time, to the end, on the main thread.
  if (bytes > readBuffer.length) readBuffer = new Uint8Array(bytes);
  return readBuffer;
}

/**
 * Where uploads wait: memory up to `memoryBytes` for the inputs held together, else files in
 * `dir`, which is emptied when opened (files of a process that stopped mid-upload).
 */
export class UploadSpool {
  private held = 0;

  constructor(readonly dir: string, readonly memoryBytes = 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
  }

  /** A place for one upload of `expectedBytes`: memory while the budget has room (see above), else a new file. */
  open(label: string, expectedBytes: number): SpooledInput {
    const file = () => new SpoolFile(path.join(this.dir, `${label.replace(/[^\w.-]/g, '_').slice(0, 64)}-${randomBytes(6).toString('hex')}.part`));
    // One that could never fit goes to disk at once.
    return expectedBytes > this.memoryBytes ? file() : new TieredInput(this, file);
  }

  /** Takes `bytes` of the budget; false (nothing taken) when it has no room. */
  hold(bytes: number): boolean {
    if (this.held + bytes > this.memoryBytes) return false;
    this.held += bytes;
    return true;
  }

  /** Gives back `bytes` of the budget. */
  letGo(bytes: number): void {
    this.held -= bytes;
  }

  /** Bytes of inputs held in memory now. */
  get heldBytes(): number {
    return this.held;
  }

  /** Files in the spool now (uploads in progress). */
  files(): string[] {
    return fs.readdirSync(this.dir);
  }
}

/** One upload's chunks in memory as they came, until the budget has no room: then in a file. */
class TieredInput implements SpooledInput {
  private chunks: Uint8Array[] = [];
  private taken = false;
  private total = 0;
  private file: SpoolFile | null = null;
  private released = false;

  constructor(private readonly spool: UploadSpool, private readonly makeFile: () => SpoolFile) {}

  get bytes(): number {
    return this.total;
  }

  append(data: Uint8Array): void {
    if (this.released) throw new Error('input already let go');
    if (!this.file && !this.spool.hold(data.length)) {
      // To disk: what is held is written out and let go; a write that fails leaves the file to remove().
      this.file = this.makeFile();
      const held = this.chunks;
      this.chunks = [];
      this.spool.letGo(this.total);
      for (const c of held) this.file.append(c);
    }
    if (this.file) this.file.append(data);
    else this.chunks.push(data);
    this.total += data.length;
  }

  *words(pieceBytes = PIECE_BYTES): Generator<Uint32Array> {
    if (this.file) {
      yield* this.file.words(pieceBytes);
      return;
    }
    // Copied into an aligned piece: a chunk may start at any byte of its message.
    const buf = pieceBuffer(pieceBytes).subarray(0, pieceBytes & ~3);
    let fill = 0;
    for (const c of this.chunks) {
      for (let at = 0; at < c.length;) {
        const n = Math.min(c.length - at, buf.length - fill);
        buf.set(c.subarray(at, at + n), fill);
        fill += n;
        at += n;
        if (fill === buf.length) {
          yield new Uint32Array(buf.buffer, 0, fill >> 2);
          fill = 0;
        }
      }
    }
    if (fill > 0) yield new Uint32Array(buf.buffer, 0, fill >> 2);
  }

  readAll(): Buffer {
    return this.file ? this.file.readAll() : Buffer.concat(this.chunks);
  }

  async flush(): Promise<void> {
    await this.file?.flush();
  }

  takeFile(): TakenFile | null {
    return this.file?.takeFile() ?? null;
  }

  takeChunks(): TakenChunks | null {
    if (this.file || this.released || this.taken) return null;
    this.taken = true;
    const chunks = this.chunks, bytes = this.total;
    this.chunks = [];
    let held = true;
    return {
      chunks,
      done: () => {
        if (held) this.spool.letGo(bytes);
        held = false;
      },
    };
  }

  async remove(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.chunks = [];
    // Until it moves to a file, all an input's bytes are held (taken ones until they are done).
    if (this.file) await this.file.remove();
    else if (!this.taken) this.spool.letGo(this.total);
  }
}

/** One upload's file: appended to (written in the background), read back in pieces, removed. */
export class SpoolFile implements SpooledInput {
  private fd: number | null;
  private appended = 0;
  /** The writes in order: each starts once the one before it is done. */
  private writing: Promise<void> = Promise.resolve();
  private writesPending = 0;
  private failure: SpoolWriteError | null = null;
  private handedOver = false;
  private closed: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {
    this.fd = fs.openSync(path, 'wx+', 0o600);
  }

  get bytes(): number {
    return this.appended;
  }

  /**
   * Writes `data` out in libuv's thread pool, after the writes before it: the event loop does not
   * wait on the disk. A write that failed (the disk took fewer bytes than given) throws its
   * {@link SpoolWriteError} here at the next append, or from {@link flush}.
   */
  append(data: Uint8Array): void {
    if (this.failure) throw this.failure;
    const fd = this.open();
    const at = this.appended;
    this.appended += data.length;
    this.writesPending++;
    this.writing = this.writing.then(() => writeAll(fd, data, at)).catch((err: unknown) => {
      this.failure ??= new SpoolWriteError(this.path, (err as NodeJS.ErrnoException).code ?? 'EIO', (err as Error).message);
    }).finally(() => {
      this.writesPending--;
    });
  }

  async flush(): Promise<void> {
    await this.writing;
    if (this.failure) throw this.failure;
  }

  *words(pieceBytes = PIECE_BYTES): Generator<Uint32Array> {
    const fd = this.readable();
    const buf = pieceBuffer(pieceBytes).subarray(0, Math.min(pieceBytes, this.appended) & ~3);
    for (let at = 0; at < this.appended;) {
      const want = Math.min(buf.length, this.appended - at);
      let got = 0;
      while (got < want) {
        const n = fs.readSync(fd, buf, got, want - got, at + got);
        if (n <= 0) throw new SpoolWriteError(this.path, 'EIO', `read ${got} of ${want} bytes at ${at}`);
        got += n;
      }
      yield new Uint32Array(buf.buffer, 0, want >> 2);
      at += want;
    }
  }

  readAll(): Buffer {
    this.readable();
    return fs.readFileSync(this.path);
  }

  /** A file's bytes are not in memory: they are handed over as the file ({@link takeFile}). */
  takeChunks(): null {
    return null;
  }

  takeFile(): TakenFile | null {
    if (this.handedOver || this.fd === null) return null;
    this.readable();
    this.handedOver = true;
    return { path: this.path, bytes: this.appended, done: () => void this.close() };
  }

  /** Removes the file once its writes are done (once), unless it was handed over: then its taker's `done` does. */
  remove(): Promise<void> {
    return this.handedOver ? Promise.resolve() : this.close();
  }

  /** Closes and removes the file in the background; a removal that fails leaves a file the next start clears (UploadSpool). */
  private close(): Promise<void> {
    if (this.fd === null) return this.closed;
    const fd = this.fd;
    this.fd = null;
    this.closed = this.writing
      .then(() => fs.promises.rm(this.path, { force: true }))
      .catch(() => {})
      .finally(() => new Promise<void>((resolve) => fs.close(fd, () => resolve())));
    return this.closed;
  }

  /** The descriptor, for reading back: every write must be done ({@link flush} awaited). */
  private readable(): number {
    const fd = this.open();
    if (this.writesPending > 0) throw new Error(`${this.path}: read before its writes are done`);
    if (this.failure) throw this.failure;
    return fd;
  }

  private open(): number {
    if (this.fd === null) throw new Error(`${this.path}: already removed`);
    return this.fd;
  }
}

/** Writes all of `data` at `position` of `fd`; rejects when the disk takes fewer bytes. */
async function writeAll(fd: number, data: Uint8Array, position: number): Promise<void> {
  for (let at = 0; at < data.length;) {
    const n = await new Promise<number>((resolve, reject) => {
      fs.write(fd, data, at, data.length - at, position + at, (err, written) => (err ? reject(err) : resolve(written)));
    });
    if (n <= 0) throw Object.assign(new Error(`wrote ${at} of ${data.length} bytes`), { code: 'ENOSPC' });
    at += n;
  }
}
