/**
 * Bad input over real gRPC: a rogue client joins the cohort and sends malformed updates while
 * two honest trainers train. Each refusal carries the stated status and a message naming what
 * was expected; the round still completes, and its result is FedAvg of the honest updates only.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { Harness, grpcError, metricValue } from './helpers.js';
import { callClientStream, callServerStream, callUnary, makeClient, CoordinatorClient, DatasetClient, type BlobPart, type Task, type UpdateHeader, encodeBlob, float32ToBytes, sha256, bytesToFloat32 } from '../src/wire/index.js';

let h: Harness;
afterEach(async () => h.close());

const T = { timeoutMs: 10_000 };

describe('bad input', () => {
  it('refuses each malformed request with its status and message, and the round completes without it', async () => {
    h = new Harness();
    const accepted: { delta: Float32Array; n: number }[] = [];
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '3', '--min-trainers', '2', '--hidden', '16', '--local-epochs', '1',
      '--heartbeat-interval-ms', '200', '--live-timeout-ms', '1500', '--validation-samples', '70', '--cohort-wait', '30'],
    { onUpdateBytes: (_t, bytes, n) => accepted.push({ delta: new Float32Array(bytesToFloat32(bytes)), n }) });
    const ds = await h.dataset(c.address, 'ds-a');
    const client = makeClient(CoordinatorClient, c.address);
    h.defer(() => client.close());
    const global0 = c.job.params();
    const P = c.job.paramCount;

    // Registration and lookups.
    expect(await grpcError(callUnary(client, 'RegisterTrainer', { nodeId: 'rogue', capacity: { samplesPerSecond: 0 } }, T)))
      .toEqual({ code: status.INVALID_ARGUMENT, details: 'capacity.samples_per_second: expected a positive number up to 10000000, got 0' });
    expect(await grpcError(callUnary(client, 'RegisterTrainer', { nodeId: 'bad id!', capacity: { samplesPerSecond: 5 } }, T)))
      .toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/^node_id: expected an id of 1 to 128/) });
    expect(await grpcError(callUnary(client, 'GetTask', { nodeId: 'ghost', waitMs: 0 }, T)))
      .toEqual({ code: status.NOT_FOUND, details: 'node ghost: not registered; call RegisterTrainer first' });
    expect(await grpcError(callUnary(client, 'RegisterDataset', { nodeId: 'd', address: 'x:1', task: 'exercise', shards: [{ shardId: 's', numSamples: 1, sha256: 'zz' }] }, T)))
      .toEqual({ code: status.INVALID_ARGUMENT, details: 'shards[s].sha256: expected 64 hex digits, got "zz"' });
    expect(await grpcError(callUnary(client, 'RegisterDataset', { nodeId: 'd', address: 'x:1', task: 'dance', shards: [] }, T)))
      .toEqual({ code: status.INVALID_ARGUMENT, details: 'task: expected one of exercise, pose, worksteps, got "dance"' });

    // The rogue registers properly and keeps its heartbeats up while it misbehaves.
    // It learns, as trainers do, that the coordinator admits an upload by its header before the chunks.
    expect(await callUnary(client, 'RegisterTrainer', { nodeId: 'rogue', capacity: { samplesPerSecond: 100 } }, T)).toMatchObject({ uploadAdmission: true });
    let beating = true;
    const beat = (async () => {
      while (beating) {
        await callUnary(client, 'Heartbeat', { nodeId: 'rogue', taskId: '' }, T).catch(() => {});
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    await h.trainer(c.address, 'honest-0');
    await h.trainer(c.address, 'honest-1');
    const res = await callUnary(client, 'GetTask', { nodeId: 'rogue', waitMs: 20_000 }, { timeoutMs: 30_000 });
    expect(res.result).toBe('task');
    const task = res.task as Task;

    const registered = await callUnary(client, 'RegisterTrainer', { nodeId: 'rogue', capacity: { samplesPerSecond: 100 } }, T);
    expect(registered.dataPort).toBeGreaterThan(0);
    expect(c.dataAddress).toBe(`127.0.0.1:${registered.dataPort}`);
    const data = makeClient(CoordinatorClient, c.dataAddress!);
    h.defer(() => data.close());
    expect(await grpcError(callUnary(data, 'GetTask', { nodeId: 'rogue', waitMs: 0 }, T)))
      .toMatchObject({ code: status.UNIMPLEMENTED });
    // The model is served alike by the coordinator's server and by its data plane, whose thread
    // relays each download to the same handler and writes the chunks it is given.
    const models: Buffer[] = [];
    for (const from of [client, data]) {
      expect(await grpcError(collect(callServerStream(from, 'FetchGlobalModel', { jobId: 'nope', round: 1 }, T))))
        .toEqual({ code: status.NOT_FOUND, details: 'job nope: not found' });
      expect(await grpcError(collect(callServerStream(from, 'FetchGlobalModel', { jobId: task.jobId, round: 9 }, T))))
        .toEqual({ code: status.NOT_FOUND, details: `job ${task.jobId}: round 9 not found; the current round is 1` });
      // A download resumed: the header, then the chunks from the one asked for; none past the last.
      const whole = await collect(callServerStream(from, 'FetchGlobalModel', { jobId: task.jobId, round: 1 }, T));
      const count = whole[0]!.header!.chunkCount;
      models.push(Buffer.concat(whole.slice(1).map((m) => m.chunk!.data)));
      const tail = await collect(callServerStream(from, 'FetchGlobalModel', { jobId: task.jobId, round: 1, fromChunk: count }, T));
      expect(tail.map((m) => m.part)).toEqual(['header']);
      expect(tail[0]!.header).toEqual(whole[0]!.header);
      expect(await grpcError(collect(callServerStream(from, 'FetchGlobalModel', { jobId: task.jobId, round: 1, fromChunk: count + 1 }, T))))
        .toEqual({ code: status.INVALID_ARGUMENT, details: `from_chunk: expected a chunk index from 0 to ${count} (the model is ${count} chunks), got ${count + 1}` });
    }
    expect(models[1]!.equals(models[0]!)).toBe(true);
    expect(new Float32Array(bytesToFloat32(models[1]!))).toEqual(global0);

    // Updates are refused alike by both, the data plane relaying each call to the same handler.
    for (const [via, to] of [['server', client], ['data plane', data]] as const) {
      const submit = (header: Partial<UpdateHeader>, parts: BlobPart<UpdateHeader>[] | null, delta = new Float32Array(P)) => {
        const { header: blob, chunks } = encodeBlob(float32ToBytes(delta), 64 * 1024);
        const h2: UpdateHeader = { nodeId: 'rogue', taskId: task.taskId, jobId: task.jobId, round: 1, numSamples: 10, trainLoss: 1, numParams: P, blob, trainSeconds: 1, masked: false, ...header };
        const msgs = parts ?? [{ part: 'header', header: h2 }, ...chunks.map((chunk) => ({ part: 'chunk' as const, chunk }))];
        // Chunks go once the coordinator admitted the header (its response headers): the refusals
        // of the chunks below come only if it sent them.
        return grpcError(callClientStream(to, 'SubmitUpdate', msgs, { ...T, awaitAdmission: true })).then((e) => ({ via, ...e }));
      };
      const short = new Float32Array(P - 1);
      const shortBlob = encodeBlob(float32ToBytes(short), 64 * 1024);
      const nan = new Float32Array(P);
      nan[5] = NaN;
      const bad = encodeBlob(float32ToBytes(new Float32Array(P)), 64 * 1024);

      expect(await submit({ numParams: P - 1 }, null)).toEqual({ via, code: status.INVALID_ARGUMENT, details: `update length: expected ${P} float32 parameters, got ${P - 1}` });
      expect(await submit({}, [{ part: 'header', header: { nodeId: 'rogue', taskId: task.taskId, jobId: task.jobId, round: 1, numSamples: 10, trainLoss: 1, numParams: P, blob: shortBlob.header, trainSeconds: 1, masked: false } }, ...shortBlob.chunks.map((chunk) => ({ part: 'chunk' as const, chunk }))]))
        .toEqual({ via, code: status.INVALID_ARGUMENT, details: `blob length: expected ${P * 4} bytes, got ${(P - 1) * 4}` });
      expect(await submit({ blob: { ...bad.header, sha256: sha256(Buffer.from('something else')) } }, null))
        .toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/^blob: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}$/) });
      expect(await submit({}, null, nan)).toEqual({ via, code: status.INVALID_ARGUMENT, details: 'update: expected finite numbers, got NaN at parameter 5' });
      expect(await submit({}, [{ part: 'chunk', chunk: bad.chunks[0]! }]))
        .toEqual({ via, code: status.INVALID_ARGUMENT, details: 'SubmitUpdateRequest: expected a header first, got a chunk' });
      expect(await submit({}, [{ part: 'header', header: { nodeId: 'rogue', taskId: task.taskId, jobId: task.jobId, round: 1, numSamples: 10, trainLoss: 1, numParams: P, blob: bad.header, trainSeconds: 1, masked: false } }, { part: 'chunk', chunk: { index: 0, data: Buffer.alloc((4 << 20) + 100) } }]))
        .toEqual({ via, code: status.RESOURCE_EXHAUSTED, details: `chunk size: expected at most ${4 << 20} bytes, got ${(4 << 20) + 100}` });
      expect(await submit({ nodeId: 'honest-0' }, null)).toEqual({ via, code: status.NOT_FOUND, details: `task ${task.taskId}: not assigned to node honest-0` });
      expect(await submit({ round: 2 }, null)).toEqual({ via, code: status.FAILED_PRECONDITION, details: `job ${task.jobId}: expected an update for round 1 (in TRAIN), got round 2` });
      const dealt = task.shards.reduce((n, x) => n + x.numSamples, 0);
      expect(await submit({ numSamples: 0 }, null)).toEqual({ via, code: status.INVALID_ARGUMENT, details: `num_samples: expected a count from 1 to ${dealt} (the samples of the shards dealt to this task), got 0` });
      expect(await submit({}, [])).toEqual({ via, code: status.INVALID_ARGUMENT, details: 'SubmitUpdateRequest: expected a header and chunks, got an empty stream' });
    }

    // The dataset node too.
    const dc = makeClient(DatasetClient, ds.address);
    h.defer(() => dc.close());
    expect(await grpcError(collect(callServerStream(dc, 'StreamShard', { shardId: 'nope' }, T))))
      .toEqual({ code: status.PERMISSION_DENIED, details: 'lease: expected a shard lease signed by the coordinator (it comes with the task), got none' });
    expect(await grpcError(collect(callServerStream(dc, 'StreamShard', { shardId: '' }, T))))
      .toEqual({ code: status.INVALID_ARGUMENT, details: 'shard_id: expected a shard id from the manifest, got an empty string' });

    // The rogue goes quiet: it is dropped, and the round completes with the honest two.
    beating = false;
    await beat;
    expect(await c.done).toBe('DONE');
    const r = c.job.history[0]!;
    expect(r.participants).toBe(2);
    expect(r.reporters.sort()).toEqual(['honest-0', 'honest-1']);
    expect(r.endedBy).toBe('members-lost');

    // Nothing the rogue sent reached the model: it is FedAvg of the two accepted updates.
    expect(accepted).toHaveLength(2);
    const total = accepted[0]!.n + accepted[1]!.n;
    const after = c.job.params();
    for (let i = 0; i < P; i += 97) {
      const expected = global0[i]! + (accepted[0]!.n * accepted[0]!.delta[i]! + accepted[1]!.n * accepted[1]!.delta[i]!) / total;
      expect(after[i]).toBeCloseTo(expected, 5);
    }
    // Each refusal above, once through each port.
    expect(await metricValue(c.metricsAddress!, 'actiquest_updates_rejected_total', { reason: 'invalid_argument' })).toBe(14);
    expect(await metricValue(c.metricsAddress!, 'actiquest_updates_rejected_total', { reason: 'resource_exhausted' })).toBe(2);
    expect(await metricValue(c.metricsAddress!, 'actiquest_updates_rejected_total', { reason: 'not_found' })).toBe(2);
    expect(await metricValue(c.metricsAddress!, 'actiquest_updates_rejected_total', { reason: 'failed_precondition' })).toBe(2);
  });
});

describe('an upload sent again', () => {
  it('is answered as the first was when it is the same blob, counted once; another blob for the task is refused (through the data plane)', async () => {
    h = new Harness();
    const accepted: string[] = [];
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '2', '--min-trainers', '2', '--hidden', '16', '--local-epochs', '1',
      '--validation-samples', '70', '--cohort-wait', '30'], { onUpdateBytes: (taskId) => accepted.push(taskId) });
    await h.dataset(c.address, 'ds-a');
    const client = makeClient(CoordinatorClient, c.address);
    h.defer(() => client.close());
    await callUnary(client, 'RegisterTrainer', { nodeId: 'retrier', capacity: { samplesPerSecond: 100 } }, T);
    const data = makeClient(CoordinatorClient, c.dataAddress!);
    h.defer(() => data.close());
    const beat = setInterval(() => void callUnary(client, 'Heartbeat', { nodeId: 'retrier', taskId: '' }, T).catch(() => {}), 300);
    h.defer(() => clearInterval(beat));
    await h.trainer(c.address, 'honest');
    const task = (await callUnary(client, 'GetTask', { nodeId: 'retrier', waitMs: 20_000 }, { timeoutMs: 30_000 })).task as Task;
    const P = c.job.paramCount;
    const upload = (delta: Float32Array) => {
      const { header: blob, chunks } = encodeBlob(float32ToBytes(delta), 64 * 1024);
      const header: UpdateHeader = { nodeId: 'retrier', taskId: task.taskId, jobId: task.jobId, round: 1, numSamples: 1, trainLoss: 1, numParams: P, blob, trainSeconds: 1, masked: false };
      return callClientStream(data, 'SubmitUpdate', [{ part: 'header', header }, ...chunks.map((chunk) => ({ part: 'chunk' as const, chunk }))], T);
    };
    const delta = new Float32Array(P).fill(1e-3);
    expect((await upload(delta)).accepted).toBe(true);
    expect((await upload(delta)).accepted).toBe(true);
    expect(await grpcError(upload(new Float32Array(P).fill(2e-3))))
      .toEqual({ code: status.FAILED_PRECONDITION, details: `task ${task.taskId}: update already received` });
    expect(await c.done).toBe('DONE');
    expect(c.job.history[0]!.reporters.sort()).toEqual(['honest', 'retrier']);
    expect(accepted.filter((t) => t === task.taskId)).toHaveLength(1);
    expect(await metricValue(c.metricsAddress!, 'actiquest_updates_accepted_total', { job_id: task.jobId })).toBe(2);
  });
});

describe('a heartbeat about a task', () => {
  it('says it is active while its round is open, its update in or not, and not once the round closed', async () => {
    h = new Harness();
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '2', '--min-trainers', '2', '--hidden', '16', '--local-epochs', '1',
      '--validation-samples', '70', '--cohort-wait', '30']);
    await h.dataset(c.address, 'ds-a');
    const client = makeClient(CoordinatorClient, c.address);
    h.defer(() => client.close());
    // Two trainers driven by hand: the round stays open until both updates are in.
    const tasks = new Map<string, string>();
    const beat = setInterval(() => {
      for (const nodeId of ['a', 'b']) void callUnary(client, 'Heartbeat', { nodeId, taskId: tasks.get(nodeId) ?? '' }, T).catch(() => {});
    }, 300);
    h.defer(() => clearInterval(beat));
    for (const nodeId of ['a', 'b']) await callUnary(client, 'RegisterTrainer', { nodeId, capacity: { samplesPerSecond: 100 } }, T);
    const [a, b] = await Promise.all(['a', 'b'].map(async (nodeId) => {
      const task = (await callUnary(client, 'GetTask', { nodeId, waitMs: 20_000 }, { timeoutMs: 30_000 })).task as Task;
      tasks.set(nodeId, task.taskId);
      return task;
    }));
    const P = c.job.paramCount;
    const upload = (nodeId: string, task: Task) => {
      const { header: blob, chunks } = encodeBlob(float32ToBytes(new Float32Array(P).fill(1e-3)), 64 * 1024);
      const header: UpdateHeader = { nodeId, taskId: task.taskId, jobId: task.jobId, round: 1, numSamples: 1, trainLoss: 1, numParams: P, blob, trainSeconds: 1, masked: false };
      return callClientStream(client, 'SubmitUpdate', [{ part: 'header', header }, ...chunks.map((chunk) => ({ part: 'chunk' as const, chunk }))], T);
    };
    const active = async (nodeId: string, task: Task) => (await callUnary(client, 'Heartbeat', { nodeId, taskId: task.taskId }, T)).taskActive;
    expect(await active('a', a!)).toBe(true);
    expect((await upload('a', a!)).accepted).toBe(true);
    // a's update is in; the round is open (b's is not): a's task is still active, as is b's.
    expect(await active('a', a!)).toBe(true);
    expect(await active('b', b!)).toBe(true);
    expect(await active('a', { ...a!, taskId: 'no-such-task' })).toBe(false);
    expect((await upload('b', b!)).accepted).toBe(true);
    // Both in: the round closed its training.
    expect(await active('a', a!)).toBe(false);
    expect(await active('b', b!)).toBe(false);
    expect(await c.done).toBe('DONE');
  });
});

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of stream) out.push(m);
  return out;
}
