import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { BlobAssembler, bytesToFloat32, encodeBlob, float32ToBytes, MAX_CHUNK_BYTES, sha256 } from './blob.js';
import { BlobLengthError, BlobTooLargeError, ChunkOrderError, ChunkTooLargeError, DigestMismatchError, InvalidFieldError } from '../errors.js';

function assemble(data: Uint8Array, chunkBytes: number, limits = { maxBytes: 1 << 30 }): Buffer {
  const { header, chunks } = encodeBlob(data, chunkBytes);
  const asm = new BlobAssembler(header, limits);
  for (const c of chunks) asm.push(c);
  return asm.finish();
}

describe('blob codec', () => {
  it('round-trips data over many chunks, the last one short', () => {
    const data = randomBytes(10 * 1024 + 17);
    const { header, chunks } = encodeBlob(data, 1024);
    expect(chunks).toHaveLength(11);
    expect(header.totalBytes).toBe(data.length);
    expect(header.chunkCount).toBe(11);
    expect(chunks[10]!.data.length).toBe(17);
    expect(assemble(data, 1024).equals(data)).toBe(true);
  });

  it('round-trips an empty blob and a float32 vector', () => {
    expect(assemble(new Uint8Array(0), 1024).length).toBe(0);
    const v = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e3);
    const back = bytesToFloat32(assemble(float32ToBytes(v), 333 * 4));
    expect(Array.from(back)).toEqual(Array.from(v));
  });

  it('refuses a blob whose digest does not match its header', () => {
    const data = randomBytes(4096);
    const { header, chunks } = encodeBlob(data, 1024);
    const asm = new BlobAssembler(header, { maxBytes: 1 << 20 });
    for (const c of chunks) asm.push(c.index === 2 ? { index: 2, data: Buffer.alloc(c.data.length) } : c);
    expect(() => asm.finish()).toThrow(DigestMismatchError);
    expect(() => asm.finish()).toThrow(/blob: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}/);
  });

  it('refuses a header whose digest differs from the expected one', () => {
    const { header } = encodeBlob(randomBytes(100), 1024);
    expect(() => new BlobAssembler(header, { maxBytes: 1000, expectedSha256: sha256(Buffer.from('other')).toString('hex') })).toThrow(DigestMismatchError);
  });

  it('refuses a stream shorter than its announced total', () => {
    const data = randomBytes(4096);
    const { header, chunks } = encodeBlob(data, 1024);
    const asm = new BlobAssembler(header, { maxBytes: 1 << 20 });
    for (const c of chunks.slice(0, 3)) asm.push(c);
    expect(() => asm.finish()).toThrow(BlobLengthError);
    expect(() => asm.finish()).toThrow('blob length: expected 4096 bytes, got 3072');
  });

  it('refuses bytes beyond the announced total', () => {
    const { header, chunks } = encodeBlob(randomBytes(2048), 1024);
    const lying = { ...header, totalBytes: 1500 };
    const asm = new BlobAssembler(lying, { maxBytes: 1 << 20 });
    asm.push(chunks[0]!);
    expect(() => asm.push(chunks[1]!)).toThrow(BlobLengthError);
  });

  it('refuses a total that differs from the expected length', () => {
    const { header } = encodeBlob(randomBytes(400), 1024);
    expect(() => new BlobAssembler(header, { maxBytes: 1 << 20, expectedBytes: 404 })).toThrow('blob length: expected 404 bytes, got 400');
  });

  it('refuses an oversize chunk and an oversize blob', () => {
    const { header } = encodeBlob(randomBytes(2048), 1024);
    const asm = new BlobAssembler(header, { maxBytes: 1 << 20, maxChunkBytes: 512 * 4 });
    expect(() => asm.push({ index: 0, data: Buffer.alloc(2049) })).toThrow(ChunkTooLargeError);
    expect(() => encodeBlob(randomBytes(10), MAX_CHUNK_BYTES + 1)).toThrow(ChunkTooLargeError);
    expect(() => new BlobAssembler({ ...header, totalBytes: 1 << 21 }, { maxBytes: 1 << 20 })).toThrow(BlobTooLargeError);
  });

  it('refuses chunks out of order and more chunks than announced', () => {
    const { header, chunks } = encodeBlob(randomBytes(3000), 1024);
    const asm = new BlobAssembler(header, { maxBytes: 1 << 20 });
    expect(() => asm.push(chunks[1]!)).toThrow(ChunkOrderError);
    expect(() => asm.push(chunks[1]!)).toThrow('chunk index: expected 0, got 1');
  });

  it('refuses a malformed header', () => {
    const { header } = encodeBlob(randomBytes(100), 1024);
    expect(() => new BlobAssembler({ ...header, sha256: Buffer.alloc(5) }, { maxBytes: 1000 })).toThrow(InvalidFieldError);
    expect(() => new BlobAssembler({ ...header, chunkCount: 0 }, { maxBytes: 1000 })).toThrow(/blob.chunk_count/);
  });

  it('reads float32 from unaligned bytes and refuses a length that is not a multiple of 4', () => {
    const v = Float32Array.from([1.5, -2.25, 3]);
    const unaligned = Buffer.alloc(13);
    Buffer.from(v.buffer).copy(unaligned, 1);
    expect(Array.from(bytesToFloat32(unaligned.subarray(1)))).toEqual([1.5, -2.25, 3]);
    expect(() => bytesToFloat32(Buffer.alloc(7))).toThrow(/multiple of 4/);
  });
});
