/**
 * Masks: a 32-byte seed expanded into a stream of uint32 words by AES-128-CTR from
 * `node:crypto` (key = seed[0..16], initial counter block = seed[16..32]), generated in 256 KiB
 * pieces (about 6 GB/s a core here; one huge `update()` is 7 times slower, the pure-JS ciphers
 * 4 to 13 times slower). Any word range can be generated on its own by starting the counter at
 * the range's block, so several threads can expand one mask.
 */
import { createCipheriv } from 'node:crypto';

/** Bytes of keystream generated per cipher call. */
export const PRG_PIECE_BYTES = 256 << 10;
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

/**
 * Adds (`sign` 1) or subtracts (`sign` -1) the mask of `seed`, words [start, start + target.length),
 * into `target` modulo 2^32.
 */
export function applyMask(seed: Uint8Array, target: Uint32Array, sign: 1 | -1, start = 0): void {
  if (seed.length !== 32) throw new RangeError(`mask seed: expected 32 bytes, got ${seed.length}`);
  // CTR blocks are 16 bytes = 4 words; start mid-block by discarding the first words.
  const firstBlock = Math.floor(start / 4);
  const skip = start % 4;
  const cipher = createCipheriv('aes-128-ctr', seed.subarray(0, 16), counterAt(seed.subarray(16, 32), firstBlock));
  let done = 0;
  let discard = skip * 4;
  const total = target.length;
  while (done < total) {
    const wantBytes = Math.min(PRG_PIECE_BYTES, (total - done) * 4 + discard);
    const ks = cipher.update(ZEROS.subarray(0, Math.ceil(wantBytes / 16) * 16));
    const words = new Uint32Array(ks.buffer, ks.byteOffset + discard, Math.min((ks.length - discard) >> 2, total - done));
    discard = 0;
    addWords(target, done, words, sign);
    done += words.length;
  }
}

/** target[off + i] += sign * words[i] (mod 2^32). */
function addWords(target: Uint32Array, off: number, words: Uint32Array, sign: 1 | -1): void {
  const n = words.length;
  if (sign === 1) for (let i = 0; i < n; i++) target[off + i] = target[off + i]! + words[i]!;
  else for (let i = 0; i < n; i++) target[off + i] = target[off + i]! - words[i]!;
}

/** The mask words [start, start + count) of `seed` as a new array (for tests and checks). */
export function maskWords(seed: Uint8Array, count: number, start = 0): Uint32Array {
  const out = new Uint32Array(count);
  applyMask(seed, out, 1, start);
  return out;
}
