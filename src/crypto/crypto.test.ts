import { describe, expect, it } from 'vitest';
import { randomBytes, createCipheriv } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  agree, agreementPublicKey, applyMask, combineShares, generateAgreementKeyPair, generateBoxKeyPair, generateIdentity,
  identityFromSeed, maskWords, open, seal, splitSecret, verifySignature,
} from './index.js';

describe('identity', () => {
  it('signs and verifies; refuses other messages, keys and malformed input', () => {
    const id = generateIdentity();
    const msg = Buffer.from('advertise');
    const sig = id.sign(msg);
    expect(verifySignature(id.publicKey, msg, sig)).toBe(true);
    expect(verifySignature(id.publicKey, Buffer.from('advertisf'), sig)).toBe(false);
    expect(verifySignature(generateIdentity().publicKey, msg, sig)).toBe(false);
    expect(verifySignature(id.publicKey.subarray(1), msg, sig)).toBe(false);
    expect(verifySignature(id.publicKey, msg, Buffer.alloc(64))).toBe(false);
    // tweetnacl agrees: standard Ed25519.
    expect(nacl.sign.detached.verify(msg, sig, id.publicKey)).toBe(true);
    expect(identityFromSeed(id.exportSeed()).publicKey.equals(id.publicKey)).toBe(true);
  });
});

describe('x25519', () => {
  it('gives both sides the same secret and matches tweetnacl', () => {
    const a = generateAgreementKeyPair();
    const b = generateAgreementKeyPair();
    expect(agree(a.secretKey, b.publicKey).equals(agree(b.secretKey, a.publicKey))).toBe(true);
    expect(Buffer.from(nacl.scalarMult(a.secretKey, b.publicKey)).equals(agree(a.secretKey, b.publicKey))).toBe(true);
    expect(agreementPublicKey(a.secretKey).equals(a.publicKey)).toBe(true);
  });
});

describe('mask PRG', () => {
  it('is AES-128-CTR keystream read as little-endian uint32', () => {
    const seed = randomBytes(32);
    const c = createCipheriv('aes-128-ctr', seed.subarray(0, 16), seed.subarray(16));
    const ks = c.update(Buffer.alloc(4096));
    expect(Array.from(maskWords(seed, 1024))).toEqual(Array.from(new Uint32Array(ks.buffer, ks.byteOffset, 1024)));
  });

  it('generates any word range on its own, across pieces and mid-block', () => {
    const seed = randomBytes(32);
    const whole = maskWords(seed, 200_003);
    for (const [start, len] of [[0, 5], [3, 10], [65_535, 70_000], [131_073, 68_930]] as const) {
      expect(Array.from(maskWords(seed, len, start))).toEqual(Array.from(whole.subarray(start, start + len)));
    }
  });

  it('carries the counter across bytes (IV near 2^128 - 1 wraps as OpenSSL does)', () => {
    const seed = Buffer.concat([randomBytes(16), Buffer.from('ffffffffffffffffffffffffffffff00', 'hex')]);
    const whole = maskWords(seed, 4 * 300);
    expect(Array.from(maskWords(seed, 8, 4 * 257))).toEqual(Array.from(whole.subarray(4 * 257, 4 * 257 + 8)));
  });

  it('adds and subtracts modulo 2^32', () => {
    const seed = randomBytes(32);
    const v = Uint32Array.from([0, 1, 0xffffffff, 12345, 7]);
    const orig = Array.from(v);
    applyMask(seed, v, 1);
    expect(Array.from(v)).not.toEqual(orig);
    applyMask(seed, v, -1);
    expect(Array.from(v)).toEqual(orig);
  });
});

describe('shamir', () => {
  it('recovers from any t shares and not from fewer', async () => {
    const secret = randomBytes(32);
    const shares = await splitSecret(secret, 7, 4);
    expect(shares).toHaveLength(7);
    expect(Buffer.from(await combineShares([shares[6]!, shares[1]!, shares[3]!, shares[0]!])).equals(secret)).toBe(true);
    expect(Buffer.from(await combineShares(shares)).equals(secret)).toBe(true);
    expect(Buffer.from(await combineShares(shares.slice(0, 3))).equals(secret)).toBe(false);
    await expect(splitSecret(secret, 3, 4)).rejects.toThrow('shamir: expected 2 <= t <= n <= 255, got t=4, n=3');
  });
});

describe('box', () => {
  it('opens what was sealed for it, and nothing else', () => {
    const a = generateBoxKeyPair();
    const b = generateBoxKeyPair();
    const ct = seal(Buffer.from('share'), b.publicKey, a.secretKey);
    expect(Buffer.from(open(ct, a.publicKey, b.secretKey)!).toString()).toBe('share');
    expect(open(ct, a.publicKey, generateBoxKeyPair().secretKey)).toBeNull();
    const tampered = Buffer.from(ct);
    tampered[tampered.length - 1]! ^= 1;
    expect(open(tampered, a.publicKey, b.secretKey)).toBeNull();
    expect(open(Buffer.alloc(3), a.publicKey, b.secretKey)).toBeNull();
  });
});

describe('SIMD add', () => {
  it('adds and subtracts mod 2^32 exactly like a JS loop, for any length and offset', async () => {
    const { addWordsInto, simdAvailable } = await import('./simd-add.js');
    expect(simdAvailable).toBe(true);
    for (const [len, off] of [[1, 0], [3, 5], [65_536, 7], [300_001, 13]] as const) {
      const target = Uint32Array.from({ length: len + off + 4 }, (_, i) => (i * 2654435761) >>> 0);
      const words = Uint32Array.from({ length: len }, (_, i) => (0xffffffff - i * 40503) >>> 0);
      const expected = Uint32Array.from(target);
      for (let i = 0; i < len; i++) expected[off + i] = (expected[off + i]! + words[i]!) >>> 0;
      addWordsInto(target, off, words, 1);
      expect(Buffer.from(target.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
      for (let i = 0; i < len; i++) expected[off + i] = (expected[off + i]! - words[i]!) >>> 0;
      addWordsInto(target, off, words, -1);
      expect(Buffer.from(target.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    }
  });

  it('adds the words of byte chunks cut at any boundary, across its megabyte stage, and refuses a length that is not the vector\'s', async () => {
    const { addBytesInto } = await import('./simd-add.js');
    const len = (1 << 18) + 12_345;
    const target = Uint32Array.from({ length: len }, (_, i) => (i * 2654435761) >>> 0);
    const words = Uint32Array.from({ length: len }, (_, i) => (0xffffffff - i * 40503) >>> 0);
    const expected = Uint32Array.from(target, (t, i) => (t + words[i]!) >>> 0);
    const bytes = new Uint8Array(words.buffer);
    const chunks: Uint8Array[] = [];
    for (let at = 0, k = 0; at < bytes.length; k++) {
      const n = Math.min(bytes.length - at, [1, 2, 5, 1 << 20, 3, 65_537][k % 6]!);
      chunks.push(bytes.subarray(at, at + n));
      at += n;
    }
    const before = Uint32Array.from(target);
    expect(() => addBytesInto(target, chunks.slice(1))).toThrow(`expected ${len * 4} bytes (${len} words), got ${len * 4 - 1}`);
    expect(Buffer.from(target.buffer).equals(Buffer.from(before.buffer))).toBe(true);
    addBytesInto(target, chunks);
    expect(Buffer.from(target.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  });
});
