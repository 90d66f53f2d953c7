import { describe, expect, it } from 'vitest';
import { dequantizeSum, quantBitsFor, quantErrorBound, quantStep, quantizeWeighted, seededWords, weightErrorBound } from './quantize.js';
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

  it('holds for every setting: clip ranges 1e-3 to 1e3, 1 to 10^6 samples, groups of 3 to 200; the total weight is never clipped', () => {
    const rng = new Random(1213);
    const clips = [1e-3, 0.01, 0.5, 1, 7, 100, 1e3];
    const groups = [3, 5, 17, 64, 200];
    for (const c of clips) {
      for (const m of groups) {
        const bits = quantBitsFor(m);
        const P = 6;
        // Sample counts from 1 to 10^6 (log-uniform); weights are counts over the group's largest.
        const counts = Array.from({ length: m }, () => Math.max(1, Math.round(10 ** (rng.next() * 6))));
        const max = Math.max(...counts);
        const sum = new Uint32Array(P + 1);
        const want = new Float64Array(P);
        for (const n of counts) {
          const w = n / max;
          const x = Float32Array.from({ length: P }, () => (rng.next() * 4 - 2) * c / w);
          const q = quantizeWeighted(x, w, c, bits, seededWords(rng));
          for (let i = 0; i <= P; i++) sum[i] = (sum[i]! + q[i]!) >>> 0;
          for (let i = 0; i < P; i++) want[i]! += Math.max(-c, Math.min(c, w * x[i]!));
        }
        const { weightedSum, totalWeight } = dequantizeSum(sum, m, c, bits);
        const bound = quantErrorBound(m, c, bits);
        for (let i = 0; i < P; i++) expect(Math.abs(weightedSum[i]! - want[i]!), `c=${c} m=${m} i=${i}`).toBeLessThan(bound + 1e-6 * m * c);
        const samples = counts.reduce((a, b) => a + b, 0);
        expect(Math.abs(totalWeight * max - samples), `c=${c} m=${m}`).toBeLessThanOrEqual(weightErrorBound(m, bits) * max);
      }
    }
    // The case that once halved the total: a clip range of 0.5 and full weights.
    const bits = quantBitsFor(2);
    const q = [0, 1].map(() => quantizeWeighted(Float32Array.from([0.1]), 1, 0.5, bits));
    const two = Uint32Array.from(q[0]!.map((v, i) => (v + q[1]![i]!) >>> 0));
    expect(dequantizeSum(two, 2, 0.5, bits).totalWeight).toBeCloseTo(2, 6);
  });
});
