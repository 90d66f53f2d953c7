import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoordinatorStore, decodeCheckpoint, encodeCheckpoint } from './store.js';
import { createFedAdam, WeightedSum } from '../src/aggregation/index.js';

describe('coordinator store', () => {
  it('round-trips a checkpoint with FedAdam state, and a restored FedAdam steps exactly as the original', () => {
    const a = createFedAdam({ serverLearningRate: 0.1 });
    const global = Float32Array.from({ length: 10 }, (_, i) => i / 10);
    const sum = new WeightedSum(10);
    sum.add(Float32Array.from({ length: 10 }, (_, i) => Math.sin(i)), 3);
    const next = a.aggregateTrain(global, sum);
    const back = decodeCheckpoint(encodeCheckpoint({ params: next, strategy: a.state() }));
    expect(back.params).toEqual(next);
    const b = createFedAdam({ serverLearningRate: 0.1 });
    b.restore(back.strategy);
    expect(b.aggregateTrain(next, sum)).toEqual(a.aggregateTrain(next, sum));
  });

  it('migrates a new file to the current schema, records rounds once, and keeps them across reopening', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-store-'));
    try {
      const s = new CoordinatorStore(dir);
      expect(s.schemaVersion).toBe(1);
      s.saveJob('j', '{}', 'RUNNING');
      const digest = s.writeCheckpoint({ params: new Float32Array([1, 2, 3]), strategy: {} });
      s.saveRound('j', 1, { loss: 1 }, [], digest);
      expect(() => s.saveRound('j', 1, { loss: 2 }, [], digest)).toThrow(/UNIQUE constraint failed/);
      s.close();
      const t = new CoordinatorStore(dir);
      expect(t.rounds('j')).toEqual([{ round: 1, record: { loss: 1 }, groups: [], checkpoint: digest }]);
      expect(t.readCheckpoint(digest).params).toEqual(new Float32Array([1, 2, 3]));
      expect(() => t.readCheckpoint('00'.repeat(32))).toThrow('missing from');
      t.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
