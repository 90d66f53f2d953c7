import { describe, expect, it } from 'vitest';
import { dequantizeSum, quantBitsFor, quantStep, quantizeWeighted, seededWords } from './quantize.js';
import { Random } from '../util/index.js';

describe('fixed point', () => {
  it('rounds stochastically without bias, within one step, and clips to [-c, c]', () => {
    const c = 2, bits = quantBitsFor(5);
    const step = quantStep(c, bits);
    const v = Float32Array.from([0.3, -1.7, 5, -9, 0]);
    let sum = new Float64Array(6);
    const N = 2000;
    const rng = new Random(4);
    for (let r = 0; r < N; r++) {
      const q = quantizeWeighted(v, 1, c, bits, seededWords(rng));
      const { weightedSum, totalWeight } = dequantizeSum(q, 1, c, bits);
      [0.3, -1.7, 2, -2, 0].forEach((want, i) => expect(Math.abs(weightedSum[i]! - want)).toBeLessThan(step + 1e-6));
      expect(Math.abs(totalWeight - 1)).toBeLessThan(step);
      sum = sum.map((s, i) => s + q[i]!);
    }
    // Unbiased: the mean of the integers sits at (v + c) / step within a fraction of a step.
    // (against the float32 inputs: at 2^29 levels, float32 0.3 and 0.3 differ by 1.6 steps)
    [0.3, -1.7, 2, -2, 0].forEach((want, i) => expect(Math.abs(sum[i]! / N - (Math.fround(want) + c) / step)).toBeLessThan(0.1));
  });

  it('never wraps: a group of m at the top of the range still sums below 2^32', () => {
    for (const m of [2, 5, 7, 100, 1000]) {
      const bits = quantBitsFor(m);
      expect(m * (2 ** bits - 1)).toBeLessThan(2 ** 32);
      expect(quantBitsFor(m) + 1 > 32 || m * (2 ** (bits + 1) - 1) >= 2 ** 32).toBe(true);
    }
  });
});
