import { describe, expect, it } from 'vitest';
import { keepFailedShardsAway, planRound, type PlanSettings } from './plan.js';
import type { DatasetRecord, TrainerRecord } from './node-registry.js';
import type { ShardRef } from '../wire/index.js';
import { Random } from '../util/index.js';
import { GroupHistory } from '../secagg/index.js';

const settings: PlanSettings = {
  jobId: 'job-1', task: 'exercise', cohort: 4, shardsPerRound: 0, roundTimeoutMs: 60_000, localEpochs: 1, batchSize: 32,
  learningRate: 0.01, optimizer: 'adam', clipNorm: 0, secure: null, dp: null,
};

function trainer(nodeId: string): TrainerRecord {
  return {
    nodeId, capacity: 100, reliability: 1, backend: 'wasm', device: 'cpu', lastSeenMs: 0, assigned: 0, onTime: 0, observed: 0,
    advertised: 100, firstSeenMs: 0, downMs: 0, identityKey: Buffer.alloc(0),
  };
}

const dataset = (nodeId: string, n: number): DatasetRecord => ({
  nodeId, address: `${nodeId}:1`, task: 'exercise', lastSeenMs: 0,
  shards: Array.from({ length: n }, (_, i) => ({ shardId: `${nodeId}-${i}`, numSamples: 10, sha256: 'ab'.repeat(32) })),
});

const ref = (datasetNodeId: string, i: number): ShardRef => ({
  datasetAddress: `${datasetNodeId}:1`, datasetNodeId, shardId: `${datasetNodeId}-${i}`, numSamples: 10, sha256: 'ab'.repeat(32),
});

function plan(seed: number, trainers: string[], datasets: DatasetRecord[], shardFailed: (t: string | null, s: ShardRef) => boolean) {
  return planRound({
    config: { ...settings, cohort: trainers.length }, round: 1, attempt: 1, trainers: trainers.map(trainer), cap: trainers.length, datasets,
    model: { topologyJson: '{}', numParams: 10, paramsSha256: '00'.repeat(32) }, rng: new Random(seed), history: new GroupHistory(), shardFailed,
  })!;
}

describe('dealing around shards that failed their digest check', () => {
  it('deals no trainer a shard it reported, and no one a shard two trainers reported', () => {
    // t0 reported every shard of "bad" but bad-5; bad-5 was reported by two trainers.
    const failed = (t: string | null, s: ShardRef) => s.shardId === 'bad-5' || (t === 't0' && s.datasetNodeId === 'bad');
    for (let seed = 1; seed <= 50; seed++) {
      const p = plan(seed, ['t0', 't1', 't2', 't3'], [dataset('good', 6), dataset('bad', 6)], failed);
      expect(p.members.map((m) => m.nodeId).sort()).toEqual(['t0', 't1', 't2', 't3']);
      expect(p.unreadable).toEqual([]);
      for (const m of p.members) {
        expect(m.task.shards.length).toBeGreaterThan(0);
        for (const s of m.task.shards) expect(failed(m.nodeId, s)).toBe(false);
      }
      const dealt = p.members.flatMap((m) => m.task.shards.map((s) => s.shardId)).sort();
      // Every other shard is still dealt once: the reported ones moved to other trainers.
      expect(dealt).toEqual([...dataset('good', 6).shards, ...dataset('bad', 6).shards].map((s) => s.shardId).filter((id) => id !== 'bad-5').sort());
    }
  });

  it('leaves out of the round a trainer that reported every shard there is', () => {
    const failed = (t: string | null, s: ShardRef) => t === 't0' && s.datasetNodeId === 'bad';
    const p = plan(3, ['t0', 't1'], [dataset('bad', 4)], failed);
    expect(p.members.map((m) => m.nodeId)).toEqual(['t1']);
    expect(p.unreadable).toEqual(['t0']);
    expect(p.members[0]!.task.shards).toHaveLength(4);
  });

  it('swaps a reported shard for one the reporter can read, and drops one nobody else can take', () => {
    const dealt = [[ref('d', 0), ref('d', 1)], [ref('d', 2), ref('d', 3)]];
    // a reported d-0; b reported d-1 (so d-1 cannot go to b) and nothing else.
    const failed = (t: string, s: ShardRef) => (t === 'a' && s.shardId === 'd-0') || (t === 'b' && s.shardId === 'd-1');
    keepFailedShardsAway(['a', 'b'], dealt, failed);
    expect(dealt[0]!.map((s) => s.shardId).sort()).toEqual(['d-1', 'd-2']);
    expect(dealt[1]!.map((s) => s.shardId).sort()).toEqual(['d-0', 'd-3']);
    const alone = [[ref('d', 0)], [ref('d', 1)]];
    keepFailedShardsAway(['a', 'b'], alone, (_t, s) => s.shardId === 'd-0');
    expect(alone).toEqual([[], [ref('d', 1)]]);
  });
});
