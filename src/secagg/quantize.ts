/**
 * Fixed point for masking. Each weighted coordinate `w * x` is clipped to [-c, c] and
 * stochastically rounded to one of L = 2^b - 1 steps over that range; the weight itself, in
 * (0, 1] (samples over the group's largest count), goes on its own scale, [0, 1] in L steps, so
 * no clip range can cut it. Values add modulo 2^32 and every mean stays unbiased. With b chosen as
 * 32 - ceil(log2 m) for a group of m, a sum of m words is below 2^32 and never wraps.
 *
 * Error bounds for a sum of m: stochastic rounding moves each value by less than one step, so
 * each weighted coordinate is off the sum of the clipped values by less than m * 2c / L, and the
 * total weight is off by less than m / L.
 */
import { randomFillSync } from 'node:crypto';
import type { Random } from '../util/index.js';

/** Largest b for which m values of b bits sum below 2^32. */
export function quantBitsFor(groupSize: number): number {
  return 32 - Math.ceil(Math.log2(Math.max(groupSize, 1)));
}

/** One quantization step. */
export function quantStep(clipRange: number, bits: number): number {
  return (2 * clipRange) / (2 ** bits - 1);
}

/** The bound on |dequantized sum - true sum| per weighted coordinate for a sum of m values. */
export function quantErrorBound(m: number, clipRange: number, bits: number): number {
  return m * quantStep(clipRange, bits);
}

/** The bound on |dequantized total weight - true total weight| for a sum of m weights in (0, 1]. */
export function weightErrorBound(m: number, bits: number): number {
  return m / (2 ** bits - 1);
}

/** Random words drawn at a time for stochastic rounding. */
const RANDOM_WORDS = 1 << 14;

/**
 * Quantizes `weight * update` (clipped) into words [0, P), and `weight` (in [0, 1]) into word P
 * on its own scale. The
 * stochastic rounding draws one random uint32 per coordinate, in bulk from `random` (by default
 * node:crypto's randomFillSync; it needs no secrecy, the masks give that).
 */
export function quantizeWeighted(
  update: Float32Array, weight: number, clipRange: number, bits: number,
  random: (words: Uint32Array) => void = (w) => { randomFillSync(w); },
): Uint32Array {
  const levels = 2 ** bits - 1;
  const scale = levels / (2 * clipRange);
  const out = new Uint32Array(update.length + 1);
  const rnd = new Uint32Array(RANDOM_WORDS);
  const P = update.length;
  for (let start = 0; start <= P; start += RANDOM_WORDS) {
    random(rnd);
    const end = Math.min(P + 1, start + RANDOM_WORDS);
    for (let i = start; i < end; i++) {
      let x: number;
      if (i < P) {
        const v = weight * update[i]!;
        x = ((v > clipRange ? clipRange : v < -clipRange ? -clipRange : v) + clipRange) * scale;
      } else {
        x = (weight > 1 ? 1 : weight < 0 ? 0 : weight) * levels;
      }
      const f = Math.floor(x);
      // Round up with probability x - f.
      const up = rnd[i - start]! < (x - f) * 4294967296 ? 1 : 0;
      out[i] = f + up > levels ? levels : f + up;
    }
  }
  return out;
}

/** A seeded source of random words for {@link quantizeWeighted} (tests, reproducible runs). */
export function seededWords(rng: Random): (words: Uint32Array) => void {
  return (w) => {
    for (let i = 0; i < w.length; i++) w[i] = rng.uint32();
  };
}

/**
 * Turns a sum of m quantized vectors into the sum of weighted updates and of weights, both
 * multiplied by `scale`, and gives the largest magnitude and the sum of squares of the weighted
 * sum (all in one pass over the vector).
 */
export function dequantizeSum(sum: Uint32Array, m: number, clipRange: number, bits: number, into?: Float32Array, scale = 1): { weightedSum: Float32Array; totalWeight: number; maxAbs: number; sumSquares: number } {
  const step = quantStep(clipRange, bits) * scale;
  const offset = m * clipRange * scale;
  const P = sum.length - 1;
  const totalWeight = (sum[P]! / (2 ** bits - 1)) * scale;
  // `into` may be a view of `sum`'s own memory: each word is read before its place is written.
  const weightedSum = into ?? new Float32Array(P);
  if (weightedSum.length !== P) throw new RangeError(`dequantizeSum: expected room for ${P} values, got ${weightedSum.length}`);
  let maxAbs = 0, sumSquares = 0;
  for (let i = 0; i < P; i++) {
    const v = Math.fround(sum[i]! * step - offset);
    weightedSum[i] = v;
    const a = Math.abs(v);
    if (!(a <= maxAbs)) maxAbs = a;
    sumSquares += v * v;
  }
  return { weightedSum, totalWeight, maxAbs, sumSquares };
}
