/**
 * Each trainer's part of distributed differential privacy under secure aggregation: it clips its
 * update to L2 norm C and adds Gaussian noise of variance (sigma C)^2 / m, where m is the number
 * of members whose inputs are summed together (its secure-aggregation group). The sum the
 * coordinator unmasks then carries noise of variance (sigma C)^2 per coordinate, the Gaussian
 * mechanism with noise multiplier sigma on a sum whose sensitivity to one trainer is C; no
 * member, and not the coordinator, sees the noise of another.
 *
 * The normal draws come from AES-128-CTR keyed by a 32-byte seed (the masks' PRG,
 * `crypto/prg.ts`), by the Box-Muller transform; the seed is random unless given (tests).
 */
import { randomBytes } from 'node:crypto';
import { maskWords } from '../crypto/index.js';

/** Scales `update` in place to L2 norm at most `clip`; returns the norm it had. */
export function clipL2(update: Float32Array, clip: number): number {
  let sq = 0;
  for (let i = 0; i < update.length; i++) sq += update[i]! * update[i]!;
  const norm = Math.sqrt(sq);
  if (norm > clip && norm > 0) {
    const s = clip / norm;
    for (let i = 0; i < update.length; i++) update[i] = update[i]! * s;
  }
  return norm;
}

/** `n` independent standard normal draws from the stream keyed by `seed`. */
export function standardNormals(n: number, seed: Uint8Array = randomBytes(32)): Float64Array {
  const pairs = Math.ceil(n / 2);
  const words = maskWords(seed, pairs * 4);
  const out = new Float64Array(n);
  for (let p = 0; p < pairs; p++) {
    // Two 53-bit uniforms from four words: u1 in (0, 1] (never 0, whose log is -infinity), u2 in [0, 1).
    const u1 = ((words[4 * p]! >>> 5) * 67108864 + (words[4 * p + 1]! >>> 6) + 1) / 9007199254740992;
    const u2 = ((words[4 * p + 2]! >>> 5) * 67108864 + (words[4 * p + 3]! >>> 6)) / 9007199254740992;
    const r = Math.sqrt(-2 * Math.log(u1));
    out[2 * p] = r * Math.cos(2 * Math.PI * u2);
    if (2 * p + 1 < n) out[2 * p + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/** What a trainer adds for differential privacy. */
export interface NoiseShare {
  /** L2 bound of one update (the sum's sensitivity to one trainer). */
  clip: number;
  /** Noise standard deviation of the group's sum over `clip`. */
  noiseMultiplier: number;
  /** Members whose updates are summed together (each adds 1/members of the variance). */
  members: number;
}

/** Clips `update` in place and adds this member's share of the noise; returns the norm before clipping. */
export function privatize(update: Float32Array, share: NoiseShare, seed?: Uint8Array): number {
  const norm = clipL2(update, share.clip);
  const std = (share.noiseMultiplier * share.clip) / Math.sqrt(share.members);
  const z = standardNormals(update.length, seed);
  for (let i = 0; i < update.length; i++) update[i] = update[i]! + std * z[i]!;
  return norm;
}
