import { describe, expect, it } from 'vitest';
import { ContributionEstimator } from './contribution.js';
import { spearman } from './spearman.js';
import { Random } from '../util/index.js';

describe('ContributionEstimator', () => {
  it('recovers planted qualities from noisy scores of random groups, never seeing one node alone', () => {
    const rng = new Random(7);
    const ids = Array.from({ length: 20 }, (_, i) => `n${i}`);
    const truth = new Map(ids.map((id, i) => [id, i < 7 ? 0 : 0.5 + rng.next()]));
    const est = new ContributionEstimator();
    for (let round = 0; round < 30; round++) {
      const order = rng.shuffle([...ids]);
      for (let g = 0; g < 4; g++) {
        const members = order.slice(g * 5, g * 5 + 5);
        const score = members.reduce((s, m) => s + truth.get(m)!, 0) / 5 + rng.normal(0, 0.05);
        est.observe({ members: members.map((id) => ({ id, share: 1 })), score });
      }
    }
    const q = est.estimate();
    expect(spearman(ids.map((i) => truth.get(i)!), ids.map((i) => q.get(i)!))).toBeGreaterThan(0.8);
    const bottom7 = [...q].sort((a, b) => a[1] - b[1]).slice(0, 7).map(([id]) => id).sort();
    expect(bottom7).toEqual(ids.slice(0, 7).sort());
  });

  it('shrinks a node seen once towards the mean', () => {
    const est = new ContributionEstimator({ lambda: 1 });
    for (let i = 0; i < 20; i++) est.observe({ members: [{ id: 'a', share: 1 }, { id: 'b', share: 1 }], score: 1 });
    est.observe({ members: [{ id: 'c', share: 1 }, { id: 'a', share: 1 }], score: 3 });
    const q = est.estimate();
    // c alone carries the jump from 1 to 3, but seen once it is pulled back towards the mean.
    expect(q.get('c')!).toBeGreaterThan(q.get('a')!);
    expect(q.get('c')!).toBeLessThan(5);
  });

  it('learns nothing, and stays finite, from rounds with a single group', () => {
    const est = new ContributionEstimator();
    est.observe({ members: [{ id: 'a', share: 1 }, { id: 'b', share: 1 }], score: 3, round: 'r1' });
    const q = est.estimate();
    expect(q.get('a')).toBe(0);
    expect(q.get('b')).toBe(0);
  });

  it('refuses bad observations', () => {
    expect(() => new ContributionEstimator().observe({ members: [{ id: 'a', share: 0 }], score: 1 })).toThrow(/positive shares/);
    expect(() => new ContributionEstimator().observe({ members: [{ id: 'a', share: 1 }], score: NaN })).toThrow(/finite score/);
  });
});

describe('spearman', () => {
  it('is 1 for the same order, -1 reversed, and handles ties', () => {
    expect(spearman([1, 2, 3, 4], [10, 20, 30, 40])).toBeCloseTo(1);
    expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1);
    expect(spearman([1, 1, 2, 3], [1, 2, 3, 4])).toBeGreaterThan(0.9);
  });
});

describe('task weighting', () => {
  it('lets the rounds of a harder (heavier) job outweigh an easier job\'s when they disagree about a node', () => {
    // Node x helps in the easy job and hurts in the hard one; a, b, c, d are average in both.
    const run = (hardWeight: number) => {
      const est = new ContributionEstimator();
      const groups = [['x', 'a'], ['b', 'c'], ['x', 'd'], ['a', 'b']];
      for (let r = 0; r < 6; r++) {
        for (const [job, sign, weight] of [['easy', 1, 1], ['hard', -1, hardWeight]] as const) {
          groups.forEach((g) => est.observe({ members: g.map((id) => ({ id, share: 1 })), score: g.includes('x') ? sign : 0, scale: 1, round: `${job}/${r}`, weight }));
        }
      }
      return est.estimate().get('x')!;
    };
    expect(run(1)).toBeCloseTo(0, 6);
    expect(run(3)).toBeLessThan(-0.1);
  });
});
