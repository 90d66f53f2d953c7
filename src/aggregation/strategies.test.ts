/**
 * The compliance suite every strategy passes, then each strategy's own arithmetic.
 */
import { describe, expect, it } from 'vitest';
import { createFedAdam, createFedAvg, createStrategy, STRATEGIES, WeightedSum, type Strategy } from './index.js';
import { Random } from '../util/index.js';

const P = 257;

function randomVec(rng: Random, n = P, sd = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal(0, sd));
}

function sumOf(updates: { delta: Float32Array; n: number }[]): WeightedSum {
  const s = new WeightedSum(P);
  for (const u of updates) s.add(u.delta, u.n);
  return s;
}

const FACTORIES: Record<(typeof STRATEGIES)[number], () => Strategy> = {
  fedavg: () => createStrategy('fedavg'),
  fedadam: () => createStrategy('fedadam'),
};

describe.each(Object.entries(FACTORIES))('strategy compliance: %s', (name, make) => {
  const rng = new Random(`compliance-${name}`);
  const global = randomVec(rng);
  const updates = [1, 3, 10].map((n) => ({ delta: randomVec(rng, P, 0.1), n }));

  it('reports its name', () => {
    expect(make().name).toBe(name);
  });

  it('leaves the global vector untouched and returns a new one', () => {
    const before = new Float32Array(global);
    const next = make().aggregateTrain(global, sumOf(updates));
    expect(next).not.toBe(global);
    expect(Array.from(global)).toEqual(Array.from(before));
  });

  it('keeps the model when no update arrived', () => {
    expect(Array.from(make().aggregateTrain(global, new WeightedSum(P)))).toEqual(Array.from(global));
  });

  it('weights by sample count: n updates equal one update of their weighted mean', () => {
    const total = updates.reduce((s, u) => s + u.n, 0);
    const mean = new Float32Array(P);
    for (const u of updates) for (let i = 0; i < P; i++) mean[i]! += (u.n * u.delta[i]!) / total;
    const a = make().aggregateTrain(global, sumOf(updates));
    const b = make().aggregateTrain(global, sumOf([{ delta: mean, n: total }]));
    for (let i = 0; i < P; i++) expect(a[i]).toBeCloseTo(b[i]!, 5);
    // and not the unweighted mean
    const flat = make().aggregateTrain(global, sumOf(updates.map((u) => ({ ...u, n: 1 }))));
    expect(Math.max(...a.map((v, i) => Math.abs(v - flat[i]!)))).toBeGreaterThan(1e-3);
  });

  it('does not depend on the order updates arrive in', () => {
    const a = make().aggregateTrain(global, sumOf(updates));
    const b = make().aggregateTrain(global, sumOf([...updates].reverse()));
    for (let i = 0; i < P; i++) expect(a[i]).toBeCloseTo(b[i]!, 5);
  });

  it('moves the model along the mean update', () => {
    const s = sumOf(updates);
    const mean = s.mean();
    const next = make().aggregateTrain(global, s);
    let dot = 0;
    for (let i = 0; i < P; i++) dot += (next[i]! - global[i]!) * mean[i]!;
    expect(dot).toBeGreaterThan(0);
  });

  it('exposes its state for checkpoints as copies', () => {
    const st = make();
    st.aggregateTrain(global, sumOf(updates));
    const snap = st.state();
    for (const v of Object.values(snap)) if (v instanceof Float32Array) v.fill(123);
    expect(Object.values(st.state()).some((v) => v instanceof Float32Array && v[0] === 123)).toBe(false);
  });
});

describe('fedavg', () => {
  it('adds the sample-weighted mean update', () => {
    const s = new WeightedSum(2);
    s.add(Float32Array.from([1, 0]), 1);
    s.add(Float32Array.from([0, 4]), 3);
    expect(Array.from(createFedAvg().aggregateTrain(Float32Array.from([10, 10]), s))).toEqual([10.25, 13]);
    expect(Array.from(createFedAvg({ serverLearningRate: 0.5 }).aggregateTrain(Float32Array.from([10, 10]), s))).toEqual([10.125, 11.5]);
  });

  it('is stateless: the same round twice gives the same step', () => {
    const st = createFedAvg();
    const s = new WeightedSum(1);
    s.add(Float32Array.from([2]), 1);
    const a = st.aggregateTrain(Float32Array.from([0]), s)[0]!;
    const b = st.aggregateTrain(Float32Array.from([0]), s)[0]!;
    expect(a).toBe(b);
  });
});

describe('fedadam', () => {
  it('follows Reddi et al. Algorithm 2 and carries its moments across rounds', () => {
    const st = createFedAdam({ serverLearningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 0.001 });
    const s = new WeightedSum(1);
    s.add(Float32Array.from([0.5]), 2);
    // round 1: m = 0.05, v = 0.0025, step = 0.1 * 0.05 / (0.05 + 0.001)
    const x1 = st.aggregateTrain(Float32Array.from([1]), s)[0]!;
    expect(x1).toBeCloseTo(1 + (0.1 * 0.05) / (0.05 + 0.001), 6);
    // round 2 (same update): m = 0.095, v = 0.004975
    const x2 = st.aggregateTrain(Float32Array.from([x1]), s)[0]!;
    expect(x2 - x1).toBeCloseTo((0.1 * 0.095) / (Math.sqrt(0.004975) + 0.001), 5);
    const state = st.state();
    expect(state.rounds).toBe(2);
    expect((state.m as Float32Array)[0]).toBeCloseTo(0.095, 6);
    expect((state.v as Float32Array)[0]).toBeCloseTo(0.004975, 6);
  });
});

describe('createStrategy', () => {
  it('refuses an unknown name, naming the known ones', () => {
    expect(() => createStrategy('fedsgd')).toThrow('strategy: expected fedavg or fedadam, got "fedsgd"');
  });
});
