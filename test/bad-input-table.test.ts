/**
 * A table of bad requests across the coordinator's and the dataset node's services, sent before
 * any trainer joins: each is refused with its gRPC status and a message saying what was
 * expected; afterwards both services still serve, the job runs its round as if nothing had
 * happened, and the coordinator's store holds exactly that round.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { Harness, grpcError } from './helpers.js';
import { callServerStream, callUnary, makeClient } from '../src/wire/client.js';
import { CoordinatorClient, DatasetClient } from '../src/wire/proto.js';
import { CoordinatorStore } from '../coordinator/store.js';

let h: Harness;
afterEach(async () => h.close());

const T = { timeoutMs: 10_000 };
const hex64 = 'ab'.repeat(32);

async function collect(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) { /* drain */ }
}

describe('bad input, table', () => {
  it('refuses each bad request with its status and a message naming what was expected, and changes nothing', async () => {
    h = new Harness();
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '2', '--min-trainers', '2', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--exit-when-done']);
    const ds = await h.dataset(c.address, 'ds-a');
    const coord = makeClient(CoordinatorClient, c.address);
    const data = makeClient(DatasetClient, ds.address);
    h.defer(() => { coord.close(); data.close(); });
    // A registered prober, to reach checks past registration.
    await callUnary(coord, 'RegisterTrainer', { nodeId: 'prober', capacity: { samplesPerSecond: 10 } }, T);

    const unary = (client: typeof coord, method: string, req: unknown) => grpcError(callUnary(client, method, req, T));
    const stream = (client: typeof coord, method: string, req: unknown) => grpcError(collect(callServerStream(client, method, req, T)));
    const fault = { datasetNodeId: 'ds-a', shardId: 'x', reason: 'r' };
    const cases: [string, () => Promise<{ code: status; details: string }>, status, RegExp][] = [
      ['RegisterTrainer, empty id', () => unary(coord, 'RegisterTrainer', { nodeId: '', capacity: { samplesPerSecond: 1 } }), status.INVALID_ARGUMENT, /^node_id: expected an id of 1 to 128/],
      ['RegisterTrainer, id too long', () => unary(coord, 'RegisterTrainer', { nodeId: 'n'.repeat(129), capacity: { samplesPerSecond: 1 } }), status.INVALID_ARGUMENT, /^node_id: expected an id of 1 to 128/],
      ['RegisterTrainer, negative capacity', () => unary(coord, 'RegisterTrainer', { nodeId: 'x', capacity: { samplesPerSecond: -3 } }), status.INVALID_ARGUMENT, /^capacity\.samples_per_second: expected a positive number, got -3$/],
      ['RegisterTrainer, identity key of 5 bytes', () => unary(coord, 'RegisterTrainer', { nodeId: 'x', capacity: { samplesPerSecond: 1 }, identityKey: Buffer.alloc(5) }), status.INVALID_ARGUMENT, /identity_key: expected/],
      ['Heartbeat, unknown node', () => unary(coord, 'Heartbeat', { nodeId: 'ghost', taskId: '' }), status.NOT_FOUND, /^node ghost: not registered/],
      ['Heartbeat, 1001 shard faults', () => unary(coord, 'Heartbeat', { nodeId: 'prober', taskId: '', shardFaults: Array(1001).fill(fault) }), status.INVALID_ARGUMENT, /^shard_faults: expected at most 1000 a heartbeat, got 1001$/],
      ['GetTask, unknown node', () => unary(coord, 'GetTask', { nodeId: 'ghost', waitMs: 0 }), status.NOT_FOUND, /^node ghost: not registered/],
      ['GetScore, bad id', () => unary(coord, 'GetScore', { nodeId: 'a b' }), status.INVALID_ARGUMENT, /^node_id: expected an id/],
      ['GetScore, not scored yet', () => unary(coord, 'GetScore', { nodeId: 'prober' }), status.NOT_FOUND, /^node prober: no score yet/],
      ['FetchGlobalModel, unknown job', () => stream(coord, 'FetchGlobalModel', { jobId: 'other', round: 1 }), status.NOT_FOUND, /^job other: not found$/],
      ['FetchGlobalModel, future round', () => stream(coord, 'FetchGlobalModel', { jobId: 'job-1', round: 7 }), status.NOT_FOUND, /^job job-1: round 7 not found; the current round is 1$/],
      ['SecAggSubmit, no secure round', () => unary(coord, 'SecAggSubmit', { nodeId: 'prober', taskId: 't', advertisement: { nodeId: 'prober' } }), status.FAILED_PRECONDITION, /expected/],
      ['RegisterDataset, bad digest', () => unary(coord, 'RegisterDataset', { nodeId: 'd2', address: 'h:1', task: 'exercise', shards: [{ shardId: 's', numSamples: 1, sha256: 'zz' }] }), status.INVALID_ARGUMENT, /^shards\[s\]\.sha256: expected 64 hex digits, got "zz"$/],
      ['RegisterDataset, unknown task', () => unary(coord, 'RegisterDataset', { nodeId: 'd2', address: 'h:1', task: 'dance', shards: [] }), status.INVALID_ARGUMENT, /^task: expected one of exercise, pose, got "dance"$/],
      ['RegisterDataset, empty shard', () => unary(coord, 'RegisterDataset', { nodeId: 'd2', address: 'h:1', task: 'exercise', shards: [{ shardId: 's', numSamples: 0, sha256: hex64 }] }), status.INVALID_ARGUMENT, /num_samples: expected/],
      ['RegisterDataset, no address', () => unary(coord, 'RegisterDataset', { nodeId: 'd2', address: '', task: 'exercise', shards: [] }), status.INVALID_ARGUMENT, /^address: expected/],
      ['StreamShard, unknown shard', () => stream(data, 'StreamShard', { shardId: 'nope' }), status.NOT_FOUND, /^shard nope: /],
      ['StreamShard, empty id', () => stream(data, 'StreamShard', { shardId: '' }), status.INVALID_ARGUMENT, /^shard_id: expected/],
    ];
    const got: string[] = [];
    for (const [name, call, code, details] of cases) {
      const err = await call();
      got.push(`${name}: ${status[err.code]} ${err.details}`);
      expect({ name, code: status[err.code], details: details.test(err.details) ? 'as expected' : err.details }).toEqual({ name, code: status[code], details: 'as expected' });
    }
    expect(got).toHaveLength(18);

    // Still serving; nothing recorded; the round runs as usual.
    expect((await callUnary<{ shards: unknown[] }>(data, 'GetManifest', {}, T)).shards.length).toBeGreaterThan(0);
    for (const id of ['t0', 't1']) await h.trainer(c.address, id);
    expect(await c.done).toBe('DONE');
    expect(c.job.history.map((r) => [r.round, r.participants])).toEqual([[1, 2]]);
    await c.close();
    const store = new CoordinatorStore(path.join(h.dir, 'out'));
    try {
      expect(store.rounds('job-1').map((r) => r.round)).toEqual([1]);
    } finally {
      store.close();
    }
  }, 120_000);
});
