/**
 * A CPU trainer on two training threads (--threads 2) in a real federation: its first round
 * times its batches on one thread and shared by both, says which it keeps, and every round
 * of the job ends with its update.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { Harness } from './helpers.js';

let h: Harness;
afterEach(async () => h.close());

describe('training threads in a trainer', () => {
  it('time a round\'s batches alone and shared, log the rates and the choice, and train every round to the end', async () => {
    h = new Harness();
    const c = await h.coordinator(['--rounds', '2', '--cohort', '1', '--min-trainers', '1', '--local-epochs', '4', '--batch-size', '16', '--secure-aggregation', 'false', '--validation-samples', '70', '--exit-when-done']);
    await h.dataset(c.address, 'ds-a', ['--shards', '4', '--samples-per-shard', '32']);
    await h.trainer(c.address, 't0', ['--threads', '2', '--log-level', 'info']);
    expect(await c.done).toBe('DONE');
    expect(c.job.history.map((r) => r.reporters)).toEqual([['t0'], ['t0']]);
    const lines = fs.readFileSync(h.logFile('trainer-t0'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; threads?: number; batchSize?: number; samplesPerSecondShared?: number; samplesPerSecondAlone?: number });
    expect(lines.find((l) => l.msg === 'started')?.threads).toBe(2);
    const timed = lines.filter((l) => l.msg.startsWith('training threads'));
    // Timed once for the job's model and batch size, not again in round 2.
    expect(timed).toHaveLength(1);
    expect(timed[0]).toMatchObject({ threads: 2, batchSize: 16 });
    expect(timed[0]!.samplesPerSecondShared).toBeGreaterThan(0);
    expect(timed[0]!.samplesPerSecondAlone).toBeGreaterThan(0);
  }, 180_000);
});
