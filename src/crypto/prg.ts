/**
 * Masks: a 32-byte seed expanded into a stream of uint32 words by AES-128-CTR from
 * `node:crypto` (key = seed[0..16], initial counter block = seed[16..32]), generated in 256 KiB
 * pieces that stay in cache (one huge `update()` is 7 times slower here, the pure-JS ciphers
 * 4 to 13 times slower). Any word range can be generated on its own by starting the counter at
 * the range's block, so several threads can expand one mask.
 */
import { createCipheriv } from 'node:crypto';
import { PIECE_WORDS, piece } from './simd-add.js';

/** Bytes of keystream generated per cipher call (a scratch piece). */
export const PRG_PIECE_BYTES = PIECE_WORDS * 4;
const ZEROS = Buffer.alloc(PRG_PIECE_BYTES);

/** The counter block `iv + blocks` (128-bit big-endian addition, as OpenSSL's CTR mode counts). */
function counterAt(iv: Uint8Array, blocks: number): Buffer {
  const out = Buffer.from(iv);
  let carry = blocks;
  for (let i = 15; i >= 0 && carry > 0; i--) {
    const v = out[i]! + (carry % 256);
    out[i] = v & 0xff;
    carry = Math.floor(carry / 256) + (v >> 8);
  }
  return out;
}

/** A mask to add (`sign` 1) or subtract (`sign` -1). */
export interface Mask {
  seed: Uint8Array;
  sign: 1 | -1;
}

/**
 * Adds or subtracts every mask's words [start, start + target.length) into `target` modulo
 * 2^32. Piece by piece: each piece of `target` is loaded once, every mask's keystream for it is
 * generated (cache-hot) and added with SIMD, and the piece is stored once.
 */
export function applyMasks(target: Uint32Array, masks: readonly Mask[], start = 0): void {
  const ciphers = masks.map((m) => {
    if (m.seed.length !== 32) throw new RangeError(`mask seed: expected 32 bytes, got ${m.seed.length}`);
    const c = createCipheriv('aes-128-ctr', m.seed.subarray(0, 16), counterAt(m.seed.subarray(16, 32), Math.floor(start / 4)));
    // Start mid-block: CTR is a stream, so skipping bytes keeps later pieces aligned.
    if (start % 4) c.update(ZEROS.subarray(0, (start % 4) * 4));
    return { c, sign: m.sign };
  });
  for (let done = 0; done < target.length; done += PIECE_WORDS) {
    const n = Math.min(PIECE_WORDS, target.length - done);
    piece.load(target, done, n);
    for (const { c, sign } of ciphers) {
      const ks = c.update(ZEROS.subarray(0, n * 4));
      piece.accumulate(ks.byteOffset % 4 === 0 ? new Uint32Array(ks.buffer, ks.byteOffset, n) : new Uint32Array(Uint8Array.from(ks).buffer), sign);
    }
    piece.store(target, done, n);
  }
}

/** Adds (`sign` 1) or subtracts (`sign` -1) one mask; see {@link applyMasks}. */
export function applyMask(seed: Uint8Array, target: Uint32Array, sign: 1 | -1, start = 0): void {
  applyMasks(target, [{ seed, sign }], start);
}

/** The mask words [start, start + count) of `seed` as a new array (for tests and checks). */
export function maskWords(seed: Uint8Array, count: number, start = 0): Uint32Array {
  const out = new Uint32Array(count);
  applyMask(seed, out, 1, start);
  return out;
}
