import { describe, expect, it } from 'vitest';
import { epsilonOf, ORDERS, rdpSampledGaussian, RdpAccountant } from './accountant.js';
import { clipL2, privatize, standardNormals } from './noise.js';

describe('RDP accountant', () => {
  it('matches dp_accounting\'s published values for the sampled Gaussian (q 0.01, sigma 2.5, 50 steps)', () => {
    // dp_accounting rdp_privacy_accountant_test.py, test_compute_rdp_poisson_sampled_gaussian (integer orders).
    const expected: [number, number][] = [[5, 2.18075656e-3], [50, 2.38460375e-2], [100, 1.67416308e2]];
    for (const [order, rdp] of expected) expect(50 * rdpSampledGaussian(0.01, 2.5, order) / rdp, `order ${order}`).toBeCloseTo(1, 4);
    expect(rdpSampledGaussian(0.01, 2.5, Infinity)).toBe(Infinity);
  });

  it('converts RDP to (epsilon, delta) as dp_accounting does', () => {
    // test_compute_epsilon_delta_pure_dp: constant RDP 1.1 over orders 2..32, delta 1e-5.
    const orders = Array.from({ length: 31 }, (_, i) => i + 2);
    const { epsilon, order } = epsilonOf(orders, orders.map(() => 1.1), 1e-5);
    expect(epsilon).toBeCloseTo(1.32783806176, 9);
    expect(order).toBe(32);
    // test_compute_epsilon_delta_gaussian: sigma 4.530877117, no sampling, is (1, 1e-6)-DP.
    const acc = new RdpAccountant(Array.from({ length: 99_000 }, (_, i) => 1 + (i + 1) * 0.001));
    acc.compose({ q: 1, noiseMultiplier: 4.530877117 });
    expect(acc.epsilon(1e-6)).toBeCloseTo(1, 5);
  });

  it('composes rounds: T rounds of sigma cost what one round of sigma / sqrt(T) costs, and never less with sampling', () => {
    const a = new RdpAccountant();
    a.compose({ q: 1, noiseMultiplier: 2 }, 16);
    const b = new RdpAccountant();
    b.compose({ q: 1, noiseMultiplier: 0.5 });
    expect(a.epsilon(1e-5)).toBeCloseTo(b.epsilon(1e-5), 9);
    expect(a.rounds).toBe(16);
    const sampled = new RdpAccountant();
    sampled.compose({ q: 0.1, noiseMultiplier: 2 }, 16);
    expect(sampled.epsilon(1e-5)).toBeLessThan(a.epsilon(1e-5));
    expect(a.epsilonAfter({ q: 1, noiseMultiplier: 2 }, 1e-5)).toBeGreaterThan(a.epsilon(1e-5));
    expect(a.rounds).toBe(16);
    expect(ORDERS[0]).toBe(1.1);
  });
});

describe('noise shares', () => {
  it('clip an update to L2 norm C and leave a shorter one as it is', () => {
    const long = Float32Array.from([3, 4]);
    expect(clipL2(long, 1)).toBe(5);
    expect(Math.hypot(long[0]!, long[1]!)).toBeCloseTo(1, 6);
    const short = Float32Array.from([0.3, 0.4]);
    clipL2(short, 1);
    expect([...short]).toEqual([Float32Array.from([0.3])[0], Float32Array.from([0.4])[0]]);
  });

  it('summed over a group of m, carry noise of variance (sigma C)^2 a coordinate (fixed seeds)', () => {
    const P = 200_000, m = 5, clip = 0.5, sigma = 1.3;
    const sum = new Float64Array(P);
    for (let j = 0; j < m; j++) {
      const zero = new Float32Array(P);
      privatize(zero, { clip, noiseMultiplier: sigma, members: m }, new Uint8Array(32).fill(j + 1));
      for (let i = 0; i < P; i++) sum[i]! += zero[i]!;
    }
    let mean = 0, sq = 0;
    for (let i = 0; i < P; i++) mean += sum[i]!;
    mean /= P;
    for (let i = 0; i < P; i++) sq += (sum[i]! - mean) ** 2;
    const variance = sq / (P - 1);
    const want = (sigma * clip) ** 2;
    // The sample variance of P normals has relative standard error sqrt(2 / P) = 0.32%: 5 of them.
    expect(Math.abs(variance / want - 1)).toBeLessThan(5 * Math.sqrt(2 / P));
    expect(Math.abs(mean)).toBeLessThan(5 * Math.sqrt(want / P));
    // Normal, not just the right variance: the share beyond 1.96 standard deviations is 5%.
    const tail = sum.filter((v) => Math.abs(v) > 1.96 * Math.sqrt(want)).length / P;
    expect(tail).toBeGreaterThan(0.047);
    expect(tail).toBeLessThan(0.053);
    // Different seeds, different noise; the same seed, the same.
    expect(standardNormals(4, new Uint8Array(32).fill(1))).toEqual(standardNormals(4, new Uint8Array(32).fill(1)));
    expect(standardNormals(4, new Uint8Array(32).fill(1))).not.toEqual(standardNormals(4, new Uint8Array(32).fill(2)));
  });
});
