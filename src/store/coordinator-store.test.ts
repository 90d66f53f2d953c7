import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import Database from 'better-sqlite3';
import os from 'node:os';
import path from 'node:path';
import { CoordinatorStore, decodeCheckpoint, encodeCheckpoint } from './coordinator-store.js';
import { createFedAdam, WeightedSum } from '../aggregation/index.js';

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

  it('migrates a version-1 file (before submitted jobs) in place, keeping its job as the built-in one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-store-'));
    try {
      const old = new Database(path.join(dir, 'coordinator.db'));
      old.exec(`CREATE TABLE jobs (job_id TEXT PRIMARY KEY, config TEXT NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
        CREATE TABLE rounds (job_id TEXT NOT NULL REFERENCES jobs(job_id), round INTEGER NOT NULL, record TEXT NOT NULL, groups TEXT NOT NULL, checkpoint TEXT NOT NULL, PRIMARY KEY (job_id, round));
        INSERT INTO jobs VALUES ('job-1', '{}', 'RUNNING', 1, 2);
        INSERT INTO rounds VALUES ('job-1', 1, '{"loss":1}', '[]', 'abc');
        PRAGMA user_version = 1;`);
      old.close();
      const s = new CoordinatorStore(dir);
      expect(s.schemaVersion).toBe(4);
      expect(s.jobs()).toEqual([{ jobId: 'job-1', state: 'RUNNING', spec: '', builtin: true, description: '', submittedBy: '', createdMs: 1, updatedMs: 2, failure: '' }]);
      expect(s.rounds('job-1').map((r) => r.round)).toEqual([1]);
      s.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('migrates a new file to the current schema, records rounds once, and keeps them across reopening', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-store-'));
    try {
      const s = new CoordinatorStore(dir);
      expect(s.schemaVersion).toBe(4);
      s.saveJob('j', '{}', 'RUNNING');
      s.saveJob('j', '', 'FAILED', 'round 1: the reason');
      expect(s.jobs()).toMatchObject([{ jobId: 'j', state: 'FAILED', failure: 'round 1: the reason' }]);
      const digest = s.writeCheckpoint({ params: new Float32Array([1, 2, 3]), strategy: {} });
      s.saveRound('j', 1, { loss: 1 }, [], digest);
      expect(() => s.saveRound('j', 1, { loss: 2 }, [], digest)).toThrow(/UNIQUE constraint failed/);
      s.close();
      const t = new CoordinatorStore(dir);
      expect(t.rounds('j')).toEqual([{ round: 1, record: { loss: 1 }, groups: [], checkpoint: digest }]);
      expect(t.readCheckpoint(digest).params).toEqual(new Float32Array([1, 2, 3]));
      // Nodes' records, named state and the weight history also survive reopening.
      t.saveNodes([{ nodeId: 'a', role: 'trainer', record: { assigned: 3 } }]);
      t.saveNodes([{ nodeId: 'a', role: 'trainer', record: { assigned: 4 } }, { nodeId: 'b', role: 'trainer', record: { assigned: 1 } }]);
      t.setState('ledger', { roundsCounted: 2 });
      t.addWeights({ atMs: 5, rounds: 1, block: null, mode: 'local', uids: [0, 1], values: [65535, 0], scores: [{ nodeId: 'a' }] });
      t.close();
      const u = new CoordinatorStore(dir);
      expect(u.nodes()).toEqual([{ nodeId: 'a', role: 'trainer', record: { assigned: 4 } }, { nodeId: 'b', role: 'trainer', record: { assigned: 1 } }]);
      expect(u.getState('ledger')).toEqual({ roundsCounted: 2 });
      expect(u.getState('nothing')).toBeNull();
      expect(u.weightsHistory()).toEqual([{ atMs: 5, rounds: 1, block: null, mode: 'local', uids: [0, 1], values: [65535, 0], scores: [{ nodeId: 'a' }] }]);
      expect(() => u.readCheckpoint('00'.repeat(32))).toThrow('missing from');
      // A round and the nodes' records it changed go in together, or (a refused round) not at all.
      u.saveRound('j', 2, { loss: 0.5 }, [], digest, [{ nodeId: 'a', role: 'trainer', record: { assigned: 5 } }]);
      expect(() => u.saveRound('j', 2, { loss: 0.4 }, [], digest, [{ nodeId: 'a', role: 'trainer', record: { assigned: 6 } }])).toThrow(/UNIQUE/);
      expect(u.nodes()[0]).toEqual({ nodeId: 'a', role: 'trainer', record: { assigned: 5 } });
      u.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
