/**
 * A phase that throws fails its round, never the process: with the checkpoint folder replaced by
 * a file (as a full or broken disk would make writing it fail), round 2's checkpoint cannot be
 * written. The attempt is counted as failed and retried; nothing of it is kept (the global
 * model, the scores and the history are those of round 1), and once the disk is back the retry
 * completes the job. A round recorded whose history file cannot be written is kept, not run again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Harness, metricValue, until } from './helpers.js';

let h: Harness;
afterEach(async () => h.close());

describe('a round whose writes fail', () => {
  it('whose checkpoint cannot be written fails that attempt, keeps nothing of it, and completes on the retry', async () => {
    h = new Harness();
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '2', '--cohort', '3', '--min-trainers', '3', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--cohort-wait', '30', '--exit-when-done']);
    await h.dataset(c.address, 'ds-a');
    // A slow device: round 2 runs long enough for the folder to be swapped before it ends.
    for (const id of ['t0', 't1']) await h.trainer(c.address, id);
    await h.trainer(c.address, 't2', ['--delay-per-batch-ms', '1000']);

    const checkpoints = path.join(h.dir, 'out', 'checkpoints');
    await until(() => c.job.history.length === 1, 'round 1 to complete');
    const afterRound1 = c.job.params();
    const scoresAfterRound1 = JSON.stringify(c.job.scoreboard.all());
    fs.renameSync(checkpoints, `${checkpoints}.away`);
    fs.writeFileSync(checkpoints, 'not a folder');

    await until(() => h.progress.some((l) => /^round 2: failed: .*checkpoints.*; retrying$/.test(l)), 'round 2 to fail at its checkpoint', 60_000, () => h.progress.slice(-3).join(' | '));
    // Nothing of the failed attempt is kept.
    expect(c.job.history).toHaveLength(1);
    expect(c.job.params()).toEqual(afterRound1);
    expect(JSON.stringify(c.job.scoreboard.all())).toBe(scoresAfterRound1);
    expect(await metricValue(c.metricsAddress!, 'actiquest_rounds_total', { result: 'failed' })).toBeGreaterThanOrEqual(1);

    fs.rmSync(checkpoints);
    fs.renameSync(`${checkpoints}.away`, checkpoints);
    expect(await c.done).toBe('DONE');
    expect(c.job.history.map((r) => r.round)).toEqual([1, 2]);
    expect(c.job.history[1]!.attempt).toBeGreaterThan(1);
    expect(fs.readdirSync(checkpoints).filter((f) => !f.endsWith('.tmp'))).toHaveLength(2);
    // Each trainer's update was scored in the two kept rounds, not in the failed attempt.
    for (const id of ['t0', 't1', 't2']) expect(c.job.scoreboard.get(id)?.groupsSeen).toBe(2);
  });

  it('keeps a recorded round whose history file cannot be written, and goes on', async () => {
    h = new Harness();
    // history.json as a folder: every write of it fails after the round is recorded.
    fs.mkdirSync(path.join(h.dir, 'out', 'history.json', 'x'), { recursive: true });
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '2', '--cohort', '2', '--min-trainers', '2', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--cohort-wait', '30', '--exit-when-done']);
    await h.dataset(c.address, 'ds-a');
    for (const id of ['t0', 't1']) await h.trainer(c.address, id);
    expect(await c.done).toBe('DONE');
    // Each round once, at its first attempt: none was run again for the file.
    expect(c.job.history.map((r) => [r.round, r.attempt])).toEqual([[1, 1], [2, 1]]);
    expect(h.progress.some((l) => /failed/.test(l))).toBe(false);
  });
});
