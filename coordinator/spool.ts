/**
 * Masked inputs on their way into a group sum are spooled to disk, not held in memory: each
 * upload's chunks are appended to a file of its own as they arrive, and once the whole input is
 * in and its digest checked, the file is read back in pieces and folded into the group's running
 * sum, then removed. The coordinator's memory thus stays the group sums and a piece, however many
 * members upload at once and however large the model. A masked input alone reveals nothing
 * (its masks are uniform), so its bytes on disk are no more sensitive than on the wire.
 *
 * An upload that ends early (cancelled, replaced, refused) leaves nothing in any sum: its file is
 * removed. Every write checks its byte count; a full disk fails the upload with
 * RESOURCE_EXHAUSTED and removes the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SpoolWriteError } from '../src/errors.js';

/** Bytes read back per piece when an input is folded. */
export const PIECE_BYTES = 4 << 20;

let readBuffer = new Uint8Array(PIECE_BYTES);

/** The directory of upload files; emptied when opened (files of a process that stopped mid-upload). */
export class UploadSpool {
  constructor(readonly dir: string) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
  }

  /** A new file for one upload. */
  open(label: string): SpoolFile {
    return new SpoolFile(path.join(this.dir, `${label.replace(/[^\w.-]/g, '_').slice(0, 64)}-${randomBytes(6).toString('hex')}.part`));
  }

  /** Files in the spool now (uploads in progress). */
  files(): string[] {
    return fs.readdirSync(this.dir);
  }
}

/** One upload's file: appended to, read back in pieces, removed. */
export class SpoolFile {
  private fd: number | null;
  private written = 0;

  constructor(readonly path: string) {
    this.fd = fs.openSync(path, 'wx+', 0o600);
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.written;
  }

  /** Appends `data`; throws {@link SpoolWriteError} when the disk takes fewer bytes than given. */
  append(data: Uint8Array): void {
    const fd = this.open();
    let at = 0;
    try {
      while (at < data.length) {
        const n = fs.writeSync(fd, data, at, data.length - at, this.written + at);
        if (n <= 0) throw Object.assign(new Error(`wrote ${at} of ${data.length} bytes`), { code: 'ENOSPC' });
        at += n;
      }
    } catch (err) {
      throw new SpoolWriteError(this.path, (err as NodeJS.ErrnoException).code ?? 'EIO', (err as Error).message);
    }
    this.written += data.length;
  }

  /**
   * The file as consecutive little-endian 32-bit words, `PIECE_BYTES` at a time, in one buffer
   * reused between pieces (each must be used before the next is asked for).
   */
  *words(pieceBytes = PIECE_BYTES): Generator<Uint32Array> {
    const fd = this.open();
    // One buffer for every file's pieces: folds run one at a time, to the end, on the main thread.
    if (pieceBytes > readBuffer.length) readBuffer = new Uint8Array(pieceBytes);
    const buf = readBuffer.subarray(0, Math.min(pieceBytes, this.written) & ~3);
    for (let at = 0; at < this.written;) {
      const want = Math.min(buf.length, this.written - at);
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

  /** The whole file in memory (tests that look at what the coordinator received). */
  readAll(): Buffer {
    return fs.readFileSync(this.path);
  }

  /** Closes and removes the file (once). */
  remove(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
    fs.rmSync(this.path, { force: true });
  }

  private open(): number {
    if (this.fd === null) throw new Error(`${this.path}: already removed`);
    return this.fd;
  }
}
