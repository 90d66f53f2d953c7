/**
 * Scores and weights from a real run: the coordinator scores every update (plaintext) or group
 * (secure), writes the weights it would set without a chain, and answers a node's GetScore.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { Harness, grpcError } from './helpers.js';
import { callUnary, makeClient, CoordinatorClient } from '../src/wire/index.js';

let h: Harness;
afterEach(async () => h.close());

/** Changes every shard file of a dataset node on disk, after it listed their digests. */
function corruptShards(nodeId: string): void {
  const dir = path.join(h.dir, 'datasets', nodeId);
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.aqs'))) {
    const bytes = fs.readFileSync(path.join(dir, f));
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    fs.writeFileSync(path.join(dir, f), bytes);
  }
}

describe('scores and weights without a chain', () => {
  it('writes the weights it would set, and each node reads its own score', async () => {
    h = new Harness();
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '2', '--cohort', '3', '--min-trainers', '3', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--exit-when-done']);
    await h.dataset(c.address, 'ds-a');
    await h.dataset(c.address, 'ds-b');
    for (const id of ['t0', 't1', 't2']) await h.trainer(c.address, id);
    expect(await c.done).toBe('DONE');

    const report = JSON.parse(fs.readFileSync(path.join(h.dir, 'out', 'weights.json'), 'utf8')) as {
      chain: null; uids: number[]; values: number[]; nodes: { uid: number; nodeId: string; role: string; u16: number; score: number }[];
    };
    expect(report.chain).toBeNull();
    expect(report.nodes.map((n) => n.nodeId).sort()).toEqual(['ds-a', 'ds-b', 't0', 't1', 't2']);
    expect(report.uids.length).toBe(report.values.length);
    expect(Math.max(...report.values)).toBe(65535);
    for (const n of report.nodes) expect(n.score).toBeGreaterThanOrEqual(0);
    expect(h.progress.some((l) => /^weights it would set \(no chain configured; local uids\): .*t0=\d+/.test(l))).toBe(true);

    const client = makeClient(CoordinatorClient, c.address);
    h.defer(() => client.close());
    const mine = await callUnary(client, 'GetScore', { nodeId: 't1' }, { timeoutMs: 5000 });
    expect(mine).toMatchObject({ nodeId: 't1', role: 'trainer', groupsSeen: 2 });
    // Its parts: both tasks in on time, live throughout, a measured speed; and their product.
    expect(mine.onTime).toBeCloseTo(3 / 4, 9);
    expect(mine.uptime).toBe(1);
    expect(mine.throughput).toBeGreaterThan(0);
    expect(mine.throughput).toBeLessThanOrEqual(1);
    expect(mine.reliability).toBeCloseTo(mine.onTime * mine.uptime * (0.75 + 0.25 * mine.throughput), 9);
    const ds = await callUnary(client, 'GetScore', { nodeId: 'ds-a' }, { timeoutMs: 5000 });
    expect(ds).toMatchObject({ role: 'dataset', onTime: 1, uptime: 1, throughput: 1 });
    expect(await grpcError(callUnary(client, 'GetScore', { nodeId: 'stranger' }, { timeoutMs: 5000 })))
      .toEqual({ code: status.NOT_FOUND, details: 'node stranger: no score yet; it is scored once a group it was in has been evaluated' });
  });

  it('scores a dataset node whose shards fail their digest check as unverified; trainers train on the good shards and report the bad', async () => {
    h = new Harness();
    // Heartbeats (which carry the reports) every 100 ms, so they arrive before the last round's scores.
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '3', '--cohort', '3', '--min-trainers', '3', '--hidden', '16',
      '--local-epochs', '2', '--validation-samples', '70', '--heartbeat-interval-ms', '100', '--exit-when-done']);
    await h.dataset(c.address, 'ds-good');
    await h.dataset(c.address, 'ds-bad');
    corruptShards('ds-bad');
    for (const id of ['t0', 't1', 't2']) await h.trainer(c.address, id);
    expect(await c.done).toBe('DONE');
    // All three trained every round, on ds-good's shards.
    expect(c.job.history.map((r) => r.participants)).toEqual([3, 3, 3]);
    const client = makeClient(CoordinatorClient, c.address);
    h.defer(() => client.close());
    // Trainers report with their heartbeats; the scores are recomputed after each round.
    const bad = await callUnary(client, 'GetScore', { nodeId: 'ds-bad' }, { timeoutMs: 5000 });
    const good = await callUnary(client, 'GetScore', { nodeId: 'ds-good' }, { timeoutMs: 5000 });
    expect(good.onTime).toBe(1);
    expect(bad.onTime).toBeLessThan(1);
    // The operational factor of its score falls with it (the score's quality part is noisier).
    expect(bad.reliability).toBeLessThan(good.reliability);
  });

  it('has trainers report and leave out shards whose bytes match their digest but do not decode as the task\'s shards', async () => {
    h = new Harness();
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '2', '--cohort', '3', '--min-trainers', '3', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--heartbeat-interval-ms', '100', '--exit-when-done']);
    await h.dataset(c.address, 'ds-good');
    // ds-bad's node lists, and serves, files cut 4 bytes short, with their digests as they are now.
    const first = await h.dataset(c.address, 'ds-bad');
    await first.close();
    const dir = path.join(h.dir, 'datasets', 'ds-bad');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { shards: { file: string; sha256: string; sizeBytes: number }[] };
    for (const shard of manifest.shards) {
      const bytes = fs.readFileSync(path.join(dir, shard.file)).subarray(0, -4);
      fs.writeFileSync(path.join(dir, shard.file), bytes);
      Object.assign(shard, { sha256: createHash('sha256').update(bytes).digest('hex'), sizeBytes: bytes.length });
    }
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    await h.dataset(c.address, 'ds-bad');
    for (const id of ['t0', 't1', 't2']) await h.trainer(c.address, id);
    expect(await c.done).toBe('DONE');
    expect(c.job.history.map((r) => r.participants)).toEqual([3, 3]);
    const reports = fs.readFileSync(h.logFile('coordinator'), 'utf8').split('\n').filter((l) => l.includes('trainer reports a shard that failed its checks'));
    expect(reports.length).toBeGreaterThan(0);
    for (const l of reports) expect(l).toMatch(/"datasetNodeId":"ds-bad".*"reason":"shard ds-bad-\d+: shard file: expected \d+ bytes, got \d+"/);
  });

  it('lets a trainer that can read none of its shards out of the round at once, and deals it none it reported again', async () => {
    h = new Harness();
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '1', '--min-trainers', '1', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--heartbeat-interval-ms', '100', '--max-attempts', '2', '--exit-when-done']);
    await h.dataset(c.address, 'ds-bad');
    corruptShards('ds-bad');
    await h.trainer(c.address, 't0');
    expect(await c.done).toBe('FAILED');
    const rounds = h.progress.filter((l) => l.startsWith('round 1:') && !l.includes('waiting'));
    // Its report ends its part in the round (not the 60 s deadline), and the next attempt finds
    // nothing it can be dealt: one trainer's report keeps the shards from it alone.
    expect(rounds).toEqual([
      'round 1: only 0 of 1 updates (members-lost); need 1, retrying',
      'round 1: only 0 trainers can be dealt a shard they did not report failing its checks (1 left out); need 1, retrying',
    ]);
    expect(fs.readFileSync(h.logFile('coordinator'), 'utf8')).toContain('trainer can read none of its shards; letting it out of the round');
  });
});
