import { describe, expect, it } from 'vitest';
import { assignShards, proportionalCounts, selectCohort } from './selection.js';
import { NodeRegistry } from './node-registry.js';
import { Random } from '../util/index.js';

describe('proportionalCounts', () => {
  it('splits in proportion, sums to the total, gives everyone at least one', () => {
    expect(proportionalCounts([1, 1, 2], 8)).toEqual([2, 2, 4]);
    const c = proportionalCounts([1, 3, 0.001], 10);
    expect(c.reduce((a, b) => a + b, 0)).toBe(10);
    expect(Math.min(...c)).toBe(1);
    expect(c[1]).toBeGreaterThan(c[0]!);
    expect(proportionalCounts([5, 5], 1).reduce((a, b) => a + b, 0)).toBe(1);
    expect(proportionalCounts([], 5)).toEqual([]);
  });
});

describe('assignShards', () => {
  it('deals every shard once, more to faster trainers', () => {
    const members = [{ nodeId: 'a', capacity: 100, reliability: 1 }, { nodeId: 'b', capacity: 300, reliability: 1 }];
    const shards = Array.from({ length: 40 }, (_, i) => i);
    const dealt = assignShards(members, shards, new Random(1));
    expect(dealt.flat().sort((x, y) => x - y)).toEqual(shards);
    expect(dealt[0]).toHaveLength(10);
    expect(dealt[1]).toHaveLength(30);
  });
});

describe('selectCohort', () => {
  it('picks distinct candidates, favouring capacity and reliability', () => {
    const rng = new Random(2);
    const cands = [
      { nodeId: 'fast', capacity: 400, reliability: 0.9 },
      { nodeId: 'slow', capacity: 100, reliability: 0.9 },
      { nodeId: 'flaky', capacity: 400, reliability: 0.1 },
      { nodeId: 'other', capacity: 100, reliability: 0.9 },
    ];
    const picks: Record<string, number> = { fast: 0, slow: 0, flaky: 0, other: 0 };
    for (let i = 0; i < 2000; i++) {
      const c = selectCohort(cands, 2, rng);
      expect(new Set(c.map((x) => x.nodeId)).size).toBe(2);
      for (const x of c) picks[x.nodeId]!++;
    }
    expect(picks.fast).toBeGreaterThan(picks.slow! * 1.5);
    expect(picks.flaky).toBeLessThan(picks.fast! / 2);
    expect(picks.slow).toBeGreaterThan(0);
    expect(selectCohort(cands, 10, rng)).toHaveLength(4);
  });
});

describe('NodeRegistry', () => {
  it('tracks liveness, reliability and observed capacity', () => {
    let now = 0;
    const reg = new NodeRegistry(1000, () => now);
    reg.register('a', 500, 'wasm', 'cpu');
    expect(reg.get('a')!.reliability).toBe(0.5);
    reg.recordTask('a', true, 200);
    reg.recordTask('a', true, 400);
    reg.recordTask('a', false);
    expect(reg.get('a')!.reliability).toBeCloseTo(3 / 5);
    expect(reg.get('a')!.capacity).toBe(300);
    reg.register('b', 500, 'wasm', 'cpu');
    expect(reg.liveCount()).toBe(2);
    now = 1000;
    expect(reg.liveCount()).toBe(2);
    reg.touch('b');
    now = 1500;
    expect(reg.isLive('a')).toBe(false);
    expect(reg.live().map((r) => r.nodeId)).toEqual(['b']);
    expect(reg.liveCount()).toBe(1);
    now = 2500;
    expect(reg.live()).toHaveLength(0);
    expect(reg.liveCount()).toBe(0);
    // A returning trainer keeps its record.
    reg.register('a', 500, 'wasm', 'cpu');
    expect(reg.isLive('a')).toBe(true);
    expect(reg.get('a')!.assigned).toBe(3);
    expect(reg.touch('nobody')).toBe(false);
  });
});
