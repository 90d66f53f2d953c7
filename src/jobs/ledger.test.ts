import { describe, expect, it } from 'vitest';
import { NodeLedger } from './ledger.js';
import { NodeRegistry, type DatasetRecord } from '../rounds/index.js';

const shards = Array.from({ length: 10 }, (_, i) => ({ shardId: `s${i}`, numSamples: 32, sha256: 'ab'.repeat(32) }));
const ds: DatasetRecord = { nodeId: 'ds-a', address: 'h:1', task: 'exercise', shards, lastSeenMs: 0 };

describe('shard fault reports', () => {
  it('count only from trainers that were dealt the shard: two that never were cannot move a dataset node\'s record', () => {
    const ledger = new NodeLedger(new NodeRegistry(60_000), () => [ds]);
    // Two trainers report all ten shards, none of which they were dealt.
    for (const t of ['slander-1', 'slander-2']) for (const s of shards) expect(ledger.reportShardFault('ds-a', s.shardId, t)).toBe(false);
    expect(ledger.shardsVerified('ds-a')).toBe(1);
    // Dealt shards s0 and s1, two trainers each find them failing: those two count.
    for (const t of ['t0', 't1']) {
      ledger.dealt(t, [{ datasetNodeId: 'ds-a', shardId: 's0' }, { datasetNodeId: 'ds-a', shardId: 's1' }]);
      for (const s of shards) ledger.reportShardFault('ds-a', s.shardId, t);
    }
    expect(ledger.shardsVerified('ds-a')).toBeCloseTo(0.8, 12);
    // One trainer alone is not enough, even for a shard it was dealt.
    ledger.dealt('t2', [{ datasetNodeId: 'ds-a', shardId: 's5' }]);
    expect(ledger.reportShardFault('ds-a', 's5', 't2')).toBe(true);
    expect(ledger.shardsVerified('ds-a')).toBeCloseTo(0.8, 12);
    // The record survives a restart as it was.
    const again = new NodeLedger(new NodeRegistry(60_000), () => [ds]);
    again.restore(ledger.snapshot());
    expect(again.shardsVerified('ds-a')).toBeCloseTo(0.8, 12);
    expect(again.shardFailedFor(null, 'ds-a', 's0')).toBe(true);
  });

  it('keep a shard from the trainer that reported it, and from every trainer once two did', () => {
    const ledger = new NodeLedger(new NodeRegistry(60_000), () => [ds]);
    for (const t of ['t0', 't1', 't2']) ledger.dealt(t, [{ datasetNodeId: 'ds-a', shardId: 's0' }, { datasetNodeId: 'ds-a', shardId: 's1' }]);
    ledger.reportShardFault('ds-a', 's0', 't0');
    // One report: kept from its reporter only.
    expect(ledger.shardFailedFor('t0', 'ds-a', 's0')).toBe(true);
    expect(ledger.shardFailedFor('t1', 'ds-a', 's0')).toBe(false);
    expect(ledger.shardFailedFor(null, 'ds-a', 's0')).toBe(false);
    expect(ledger.shardFailedFor('t0', 'ds-a', 's1')).toBe(false);
    // A report from a trainer never dealt the shard keeps nothing from anyone.
    ledger.reportShardFault('ds-a', 's1', 'stranger');
    expect(ledger.shardFailedFor('stranger', 'ds-a', 's1')).toBe(false);
    // A second trainer: kept from all.
    ledger.reportShardFault('ds-a', 's0', 't1');
    expect(ledger.shardFailedFor('t2', 'ds-a', 's0')).toBe(true);
    expect(ledger.shardFailedFor(null, 'ds-a', 's0')).toBe(true);
  });
});
