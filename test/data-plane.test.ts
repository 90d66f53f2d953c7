/**
 * The coordinator's data plane (coordinator/data-plane.ts), a server on a thread and port of its
 * own for the model's downloads and the updates' uploads. A trainer that cannot reach it (a
 * firewall that lets only --listen through) gets the model from, and sends its update to, the
 * coordinator's own server after two tries each.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { Harness } from './helpers.js';

let h: Harness;
afterEach(async () => h.close());

describe('the data plane', () => {
  it("out of a trainer's reach: the model and the update go through the coordinator's own server after two tries", async () => {
    h = new Harness();
    // The data plane listens on 127.0.0.2; trainers reach the coordinator at 127.0.0.1 and look
    // for the data plane's port there, where nothing listens.
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '2', '--min-trainers', '2', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--data-listen', '127.0.0.2:0']);
    expect(c.dataAddress).toMatch(/^127\.0\.0\.2:\d+$/);
    await h.dataset(c.address, 'ds-a');
    for (const id of ['t0', 't1']) await h.trainer(c.address, id, ['--log-level', 'info']);
    expect(await c.done).toBe('DONE');
    expect(c.job.history[0]!.reporters.sort()).toEqual(['t0', 't1']);
    for (const id of ['t0', 't1']) {
      const log = fs.readFileSync(h.logFile(`trainer-${id}`), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; error?: string });
      expect(log.some((l) => l.msg === 'the model and updates go through the coordinator\'s data plane')).toBe(true);
      const cutOff = log.filter((l) => l.msg === 'upload cut off; retrying');
      expect(cutOff).toHaveLength(2);
      for (const l of cutOff) expect(l.error).toMatch(/^14 UNAVAILABLE/);
      expect(log.some((l) => l.msg === 'update submitted')).toBe(true);
    }
  }, 60_000);
});
