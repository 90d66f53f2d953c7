/**
 * The chunk codec: any large blob (a model's parameters, an update, a shard file) travels as a
 * header (total length, sha256, chunk count) followed by ordered byte chunks of at most
 * `chunkBytes`. The receiver hashes while it copies, so a blob is touched once.
 */
import { createHash, type Hash } from 'node:crypto';
import type { BlobChunk, BlobHeader } from './proto.js';
import {
  BlobLengthError, BlobTooLargeError, ChunkOrderError, ChunkTooLargeError, DigestMismatchError,
  InvalidFieldError,
} from '../errors.js';

/** Default chunk size: 1 MiB, inside the 1 to 4 MiB the contract allows. */
export const DEFAULT_CHUNK_BYTES = 1 << 20;
/** Largest chunk anyone may send. */
export const MAX_CHUNK_BYTES = 4 << 20;
/** grpc-js message limit set on every channel and server: a 4 MiB chunk plus framing. */
export const MAX_MESSAGE_BYTES = MAX_CHUNK_BYTES + (64 << 10);

/** sha256 of `data` as a Buffer. */
export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * Splits `data` into a header and its chunks; chunks are views, nothing is copied. `digest`:
 * its sha256 when the caller already has it (a model sent to every trainer is hashed once).
 */
export function encodeBlob(data: Uint8Array, chunkBytes = DEFAULT_CHUNK_BYTES, digest?: Buffer): { header: BlobHeader; chunks: BlobChunk[] } {
  if (chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) throw new ChunkTooLargeError(chunkBytes, MAX_CHUNK_BYTES);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const chunks: BlobChunk[] = [];
  for (let off = 0, i = 0; off < buf.length; off += chunkBytes, i++) {
    chunks.push({ index: i, data: buf.subarray(off, Math.min(off + chunkBytes, buf.length)) });
  }
  return { header: { totalBytes: buf.length, sha256: digest ?? sha256(buf), chunkCount: chunks.length }, chunks };
}

/** Limits a receiver applies to one blob. */
export interface BlobLimits {
  /** Largest total the receiver accepts. */
  maxBytes: number;
  /** Largest chunk the receiver accepts. */
  maxChunkBytes?: number;
  /** When set, the total must be exactly this. */
  expectedBytes?: number;
  /** When set (hex), the header's sha256 must equal it. */
  expectedSha256?: string;
  /** Where to receive into (e.g. from a {@link BufferPool}); must hold `total_bytes`. */
  allocate?: (bytes: number) => Buffer;
  /** Hands each chunk on instead (to a file, say): nothing is kept, and {@link BlobAssembler.verify} ends the blob. */
  sink?: (data: Buffer) => void;
  /**
   * The sha256 of the chunks' bytes in the order they came, taken by whoever read them off the
   * wire (the data plane's thread hashes an upload's chunks as they arrive): when set, the
   * assembler does not hash them again, and `verify` checks this digest against the header's.
   */
  digestOfChunks?: () => Buffer;
}

/**
 * Reassembles a blob from its header and chunks, checking order, sizes, total length and digest.
 * Throws a domain error on the first violation; `finish()` returns the bytes.
 */
export class BlobAssembler {
  private readonly out: Buffer | null;
  private readonly sink: ((data: Buffer) => void) | null;
  private readonly total: number;
  private readonly hash: Hash | null;
  private readonly digestOfChunks: (() => Buffer) | null;
  private digest: Buffer | null = null;
  private received = 0;
  private nextIndex = 0;
  private readonly maxChunk: number;

  readonly header: BlobHeader;

  /** Checks `header` (a stream's header may arrive without one) against `limits`. */
  constructor(header: BlobHeader | null | undefined, limits: BlobLimits) {
    if (!header) throw new InvalidFieldError('blob', 'a blob header (total bytes, sha256, chunk count)', 'nothing');
    this.header = header;
    const total = header.totalBytes;
    if (!Number.isSafeInteger(total) || total < 0) {
      // 64-bit fields arrive as numbers: any past 2^53 was rounded on the way in, and is refused.
      throw new InvalidFieldError('blob.total_bytes', 'a non-negative integer below 2^53', total >= 2 ** 53 ? `${total} (rounded; 2^53 or more)` : String(total));
    }
    if (total > limits.maxBytes) throw new BlobTooLargeError(total, limits.maxBytes);
    if (limits.expectedBytes !== undefined && total !== limits.expectedBytes) {
      throw new BlobLengthError(limits.expectedBytes, total);
    }
    if (header.sha256.length !== 32) {
      throw new InvalidFieldError('blob.sha256', '32 bytes', `${header.sha256.length} bytes`);
    }
    if (limits.expectedSha256 !== undefined && header.sha256.toString('hex') !== limits.expectedSha256) {
      throw new DigestMismatchError('blob header', limits.expectedSha256, header.sha256.toString('hex'));
    }
    this.maxChunk = Math.min(limits.maxChunkBytes ?? MAX_CHUNK_BYTES, MAX_CHUNK_BYTES);
    const minChunks = total === 0 ? 0 : Math.ceil(total / this.maxChunk);
    if (header.chunkCount < minChunks || header.chunkCount > Math.max(minChunks, total)) {
      throw new InvalidFieldError('blob.chunk_count', `${minChunks} to ${Math.max(minChunks, total)} for ${total} bytes`, String(header.chunkCount));
    }
    this.total = total;
    this.sink = limits.sink ?? null;
    this.digestOfChunks = limits.digestOfChunks ?? null;
    this.hash = this.digestOfChunks ? null : createHash('sha256');
    this.out = this.sink ? null : limits.allocate ? limits.allocate(total) : Buffer.allocUnsafe(total);
    if (this.out && this.out.length !== total) throw new BlobLengthError(total, this.out.length);
  }

  /** Bytes received so far. */
  get bytesReceived(): number {
    return this.received;
  }

  /** Chunks received so far: the index of the next one. */
  get chunksReceived(): number {
    return this.nextIndex;
  }

  /** Whether `header` describes the same blob (a resumed download's header must). */
  sameBlob(header: BlobHeader | null | undefined): boolean {
    return !!header && header.totalBytes === this.header.totalBytes && header.chunkCount === this.header.chunkCount && Buffer.from(header.sha256).equals(Buffer.from(this.header.sha256));
  }

  /** Adds the next chunk. */
  push(chunk: BlobChunk): void {
    if (chunk.index !== this.nextIndex || this.nextIndex >= this.header.chunkCount) {
      throw new ChunkOrderError(this.nextIndex, chunk.index);
    }
    const n = chunk.data.length;
    if (n > this.maxChunk) throw new ChunkTooLargeError(n, this.maxChunk);
    if (this.received + n > this.total) throw new BlobLengthError(this.total, this.received + n);
    if (this.out) chunk.data.copy(this.out, this.received);
    else this.sink!(chunk.data);
    this.hash?.update(chunk.data);
    this.received += n;
    this.nextIndex++;
  }

  /** Checks the total and the digest and returns the blob. */
  finish(): Buffer {
    if (!this.out) throw new Error('finish(): this blob went to a sink; call verify()');
    this.verify();
    return this.out;
  }

  /** Checks the total and the digest. */
  verify(): void {
    if (this.received !== this.total || this.nextIndex !== this.header.chunkCount) {
      throw new BlobLengthError(this.total, this.received);
    }
    this.digest ??= this.hash ? this.hash.digest() : this.digestOfChunks!();
    const got = this.digest;
    if (!got.equals(this.header.sha256)) {
      throw new DigestMismatchError('blob', this.header.sha256.toString('hex'), got.toString('hex'));
    }
  }
}

/** Little-endian bytes of a float32 vector (a view: this project runs on little-endian hosts). */
export function float32ToBytes(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** A float32 vector over `bytes`, copied only when the bytes are not 4-aligned. */
export function bytesToFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new InvalidFieldError('float32 blob', 'a multiple of 4 bytes', `${bytes.byteLength} bytes`);
  }
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new Float32Array(new Uint8Array(bytes).buffer);
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('actiquest needs a little-endian host: tensors travel as little-endian float32');
}
