/**
 * One table of bad requests across every service (the coordinator's Coordinator and Jobs, the
 * dataset node's Dataset), against nodes that take signed requests only: most sent before any
 * trainer joins, the upload cases from a prober that is a member of the running round (it
 * registered as a trainer and was dealt a task beside two honest trainers). Each is refused with
 * its gRPC status and a message saying what was expected. Afterwards every service still
 * serves, no job was added, the round completes with the two honest trainers once the prober
 * goes quiet, and the coordinator's store holds exactly that round of exactly that job.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Metadata, credentials, status, type Client } from '@grpc/grpc-js';
import { Harness, grpcError } from './helpers.js';
import { dev, lease, rawUnary, sign } from './signed-fixture.js';
import { audienceOf, signedMetadata, callClientStream, callServerStream, callUnary, makeClient, CoordinatorClient, DatasetClient, JobsClient, type BlobPart, type CoordinatorStub, type ServerStreamMethod, type UnaryMethod, type Task, type UpdateHeader, encodeBlob, float32ToBytes } from '../src/wire/index.js';
import { CoordinatorStore } from '../src/store/index.js';
import { getTask } from '../src/tasks/index.js';

let h: Harness;
afterEach(async () => h.close());

const T = { timeoutMs: 10_000 };
const hex64 = 'ab'.repeat(32);

/** A unary call whose request is `body` as is (bytes no well-behaved client would send), signed by `signer`. */
function rawBytes(client: Client, method: string, signer: Awaited<ReturnType<typeof dev>>, body: Buffer): Promise<{ code: status; details: string }> {
  const path = (client.constructor as unknown as { service: Record<string, { path: string }> }).service[method]!.path;
  const md = signedMetadata(signer, path, body, Date.now(), { audience: audienceOf(client)! });
  return grpcError(new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, md, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res)));
  }));
}

async function collect(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) { /* drain */ }
}

/** The exercise task's input shape. */
const X = getTask('exercise').inputShape;

const spec = (extra: string) => `task: exercise\nrounds: 1\nsecureAggregation: { enabled: false }\n${extra}`;

/** A Sequential topology (snake_case, as model.toJSON() writes it) over `input`. */
const topology = (input: number[], layers: [string, Record<string, unknown>][]) => JSON.stringify({
  class_name: 'Sequential',
  config: { name: 's', layers: layers.map(([class_name, config], i) => ({ class_name, config: i === 0 ? { ...config, batch_input_shape: [null, ...input] } : config })) },
});

describe('bad input, table', () => {
  it('refuses each bad request with its status and a message naming what was expected, and changes nothing', async () => {
    h = new Harness();
    const [prober, ghost, mallory, leaseKey, t0, t1, ds] = await Promise.all(['Prober', 'Ghost', 'Mallory', 'Lease', 'T0', 'T1', 'Ds'].map(dev));
    const allow = path.join(h.dir, 'allowlist');
    fs.writeFileSync(allow, [prober, ghost, t0, t1, ds].map((s) => s!.address).join('\n'));
    const c = await h.coordinator(['--auth', 'signed', '--allowlist', allow, '--lease-key-uri', '//Lease', '--secure-aggregation', 'false',
      '--rounds', '1', '--cohort', '3', '--min-trainers', '2', '--hidden', '16', '--local-epochs', '1', '--validation-samples', '70', '--exit-when-done',
      '--heartbeat-interval-ms', '200', '--live-timeout-ms', '1500', '--cohort-wait', '30']);
    const d = await h.dataset(c.address, 'ds-a', ['--hotkey-uri', '//Ds', '--auth', 'signed']);
    const P = prober!.address, G = ghost!.address, D = ds!.address;
    const coord = makeClient(CoordinatorClient, c.address, undefined, prober);
    const asGhost = makeClient(CoordinatorClient, c.address, undefined, ghost);
    const jobs = makeClient(JobsClient, c.address, undefined, prober);
    const data = makeClient(DatasetClient, d.address, undefined, prober);
    const raw = makeClient(CoordinatorClient, c.address, undefined, null, leaseKey!.address);
    // A client that sends more than the servers take (the project's clients refuse to).
    const unlimited = new JobsClient(c.address, credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20 });
    h.defer(() => { for (const x of [coord, asGhost, jobs, data, raw, unlimited]) x.close(); });
    // A registered prober, to reach checks past registration; a shard id to lease.
    await callUnary(coord, 'RegisterTrainer', { nodeId: P, capacity: { samplesPerSecond: 10 } }, T);
    const shard = (await callUnary(data, 'GetManifest', {}, T)).shards[0]!.shardId;
    const hb = { nodeId: P, taskId: '' };
    const replay = sign(raw, 'Heartbeat', prober!, hb);
    await rawUnary(raw, 'Heartbeat', hb, replay);

    // The table sends any method of any service anything: its calls are typed as loosely as that.
    const unary = (client: Client, method: string, req: unknown) => grpcError(callUnary(client as CoordinatorStub, method as UnaryMethod<CoordinatorStub>, req as never, T));
    const stream = (client: Client, method: string, req: unknown) => grpcError(collect(callServerStream(client as CoordinatorStub, method as ServerStreamMethod<CoordinatorStub>, req as never, T)));
    const upload = (msgs: BlobPart<UpdateHeader>[]) => grpcError(callClientStream(coord, 'SubmitUpdate', msgs, T));
    const blob = encodeBlob(Buffer.alloc(64), 32);
    const header = (over: Partial<UpdateHeader>): BlobPart<UpdateHeader> => ({
      part: 'header', header: { nodeId: P, taskId: 't', jobId: 'job-1', round: 1, numSamples: 1, trainLoss: 0, numParams: 16, blob: blob.header, trainSeconds: 1, masked: false, ...over },
    });
    const shardWith = (l: unknown, shardId = shard, fromChunk = 0) => stream(data, 'StreamShard', { shardId, lease: l, fromChunk });
    const fault = { datasetNodeId: D, shardId: 'x', reason: 'r' };
    const cases: [string, () => Promise<{ code: status; details: string }>, status, RegExp][] = [
      // Registration, lookups, scores.
      ['RegisterTrainer, empty id', () => unary(coord, 'RegisterTrainer', { nodeId: '', capacity: { samplesPerSecond: 1 } }), status.INVALID_ARGUMENT, /^node_id: expected an id of 1 to 128/],
      ['RegisterTrainer, negative capacity', () => unary(coord, 'RegisterTrainer', { nodeId: P, capacity: { samplesPerSecond: -3 } }), status.INVALID_ARGUMENT, /^capacity\.samples_per_second: expected a positive number up to 10000000, got -3$/],
      ['RegisterTrainer, capacity 1e308', () => unary(coord, 'RegisterTrainer', { nodeId: P, capacity: { samplesPerSecond: 1e308 } }), status.INVALID_ARGUMENT, /^capacity\.samples_per_second: expected a positive number up to 10000000, got 1e\+308$/],
      ['RegisterTrainer, 1 MiB device name', () => unary(coord, 'RegisterTrainer', { nodeId: P, capacity: { samplesPerSecond: 1, device: 'd'.repeat(1 << 20) } }), status.INVALID_ARGUMENT, /^capacity\.device: expected a name of at most 128 characters, got 1048576 characters$/],
      // Long values are quoted cut, with their length (a status message travels in a header).
      ['Heartbeat, 8 KB node id', () => unary(coord, 'Heartbeat', { nodeId: 'x'.repeat(8192), taskId: '' }), status.INVALID_ARGUMENT, /^node_id: expected an id of 1 to 128 .*, got "x{255}\.\.\. \(8194 characters\)$/],
      ['GetStatus, 8 KB job id', () => unary(coord, 'GetStatus', { jobId: 'j'.repeat(8192) }), status.NOT_FOUND, /^job j{64}\.\.\. \(8192 characters\): not found$/],
      ['Heartbeat, node id not UTF-8', () => rawBytes(raw, 'Heartbeat', prober!, Buffer.from([0x0a, 0x02, 0xff, 0xfe])), status.INVALID_ARGUMENT, /^node_id: expected an id of 1 to 128 .*, got "\ufffd\ufffd"$/],
      ['RegisterTrainer, identity key of 5 bytes', () => unary(coord, 'RegisterTrainer', { nodeId: P, capacity: { samplesPerSecond: 1 }, identityKey: Buffer.alloc(5) }), status.INVALID_ARGUMENT, /^identity_key: expected 32 bytes/],
      ['Heartbeat, unknown node', () => unary(asGhost, 'Heartbeat', { nodeId: G, taskId: '' }), status.NOT_FOUND, /^node 5\w+: not registered/],
      ['Heartbeat, 1001 shard faults', () => unary(coord, 'Heartbeat', { nodeId: P, taskId: '', shardFaults: Array(1001).fill(fault) }), status.INVALID_ARGUMENT, /^shard_faults: expected at most 1000 a heartbeat, got 1001$/],
      ['GetTask, unknown node', () => unary(asGhost, 'GetTask', { nodeId: G, waitMs: 0 }), status.NOT_FOUND, /^node 5\w+: not registered/],
      ['GetScore, bad id', () => unary(coord, 'GetScore', { nodeId: 'a b' }), status.INVALID_ARGUMENT, /^node_id: expected an id/],
      ['GetScore, not scored yet', () => unary(coord, 'GetScore', { nodeId: P }), status.NOT_FOUND, /^node 5\w+: no score yet/],
      ['RegisterDataset, bad digest', () => unary(coord, 'RegisterDataset', { nodeId: P, address: 'h:1', task: 'exercise', shards: [{ shardId: 's', numSamples: 1, sha256: 'zz' }] }), status.INVALID_ARGUMENT, /^shards\[s\]\.sha256: expected 64 hex digits, got "zz"$/],
      ['RegisterDataset, unknown task', () => unary(coord, 'RegisterDataset', { nodeId: P, address: 'h:1', task: 'dance', shards: [] }), status.INVALID_ARGUMENT, /^task: expected one of exercise, pose, worksteps, got "dance"$/],
      ['RegisterDataset, empty shard', () => unary(coord, 'RegisterDataset', { nodeId: P, address: 'h:1', task: 'exercise', shards: [{ shardId: 's', numSamples: 0, sha256: hex64 }] }), status.INVALID_ARGUMENT, /num_samples: expected a positive count, got 0/],
      ['RegisterDataset, no address', () => unary(coord, 'RegisterDataset', { nodeId: P, address: '', task: 'exercise', shards: [] }), status.INVALID_ARGUMENT, /^address: expected host:port/],
      // Models and updates.
      ['FetchGlobalModel, unknown job', () => stream(coord, 'FetchGlobalModel', { jobId: 'other', round: 1 }), status.NOT_FOUND, /^job other: not found$/],
      ['FetchGlobalModel, future round', () => stream(coord, 'FetchGlobalModel', { jobId: 'job-1', round: 7 }), status.NOT_FOUND, /^job job-1: round 7 not found; the current round is 1$/],
      ['SubmitUpdate, unknown job', () => upload([header({ jobId: 'other' })]), status.NOT_FOUND, /^job other: not found$/],
      ['SubmitUpdate, no round taking updates', () => upload([header({})]), status.FAILED_PRECONDITION, /^job job-1: expected no update \(no round in TRAIN\), got one for round 1$/],
      ['SubmitUpdate, chunk before header', () => upload([{ part: 'chunk', chunk: blob.chunks[0]! }]), status.INVALID_ARGUMENT, /^SubmitUpdateRequest: expected a header first, got a chunk$/],
      ['SubmitUpdate, empty stream', () => upload([]), status.INVALID_ARGUMENT, /^SubmitUpdateRequest: expected a header and chunks, got an empty stream$/],
      ['SubmitUpdate, for another node', () => upload([header({ nodeId: G })]), status.PERMISSION_DENIED, /^header\.node_id: expected the signing hotkey's address 5\w+, got "5\w+"$/],
      ['SecAggSubmit, no secure round', () => unary(coord, 'SecAggSubmit', { nodeId: P, taskId: 't', advertisement: { nodeId: P } }), status.FAILED_PRECONDITION, /^job job-1: expected a round with secure aggregation in progress, got none$/],
      ['SecAggAwait, unknown stage', () => unary(coord, 'SecAggAwait', { nodeId: P, taskId: 't', stage: 'LATER', waitMs: 0 }), status.INVALID_ARGUMENT, /^stage: expected SHARE_KEYS, MASKED_INPUT, CONSISTENCY or UNMASK, got "LATER"$/],
      // Signatures and admission.
      ['unsigned request', () => grpcError(rawUnary(raw, 'Heartbeat', hb, new Metadata())), status.UNAUTHENTICATED, /^request signature: expected x-aq-hotkey, .* got none$/],
      ['session certified by another key', () => {
        const md = sign(raw, 'Heartbeat', mallory!, hb, { session: true });
        md.set('x-aq-hotkey', P);
        return grpcError(rawUnary(raw, 'Heartbeat', hb, md));
      }, status.UNAUTHENTICATED, /^x-aq-session-bin: expected a session key certified by 5\w+, got a certificate that does not verify$/],
      ['signature by another key', () => {
        const md = sign(raw, 'Heartbeat', mallory!, hb, { session: false });
        md.set('x-aq-hotkey', P);
        return grpcError(rawUnary(raw, 'Heartbeat', hb, md));
      }, status.UNAUTHENTICATED, /^x-aq-signature-bin: expected a signature by 5\w+ over its hotkey, the server's, the method, body digest, timestamp and nonce, got one that does not verify$/],
      ['stale timestamp', () => grpcError(rawUnary(raw, 'Heartbeat', hb, sign(raw, 'Heartbeat', prober!, hb, { now: Date.now() - 300_000 }))), status.UNAUTHENTICATED, /^x-aq-timestamp: expected a time within 60 s .* got 30\d\.\d s old$/],
      ['replayed nonce', () => grpcError(rawUnary(raw, 'Heartbeat', hb, replay)), status.UNAUTHENTICATED, /^x-aq-nonce: expected a nonce not used before, got one 5\w+ already used \(a replayed request\)$/],
      ['hotkey not admitted', () => grpcError(rawUnary(raw, 'Heartbeat', { nodeId: mallory!.address, taskId: '' }, sign(raw, 'Heartbeat', mallory!, { nodeId: mallory!.address, taskId: '' }))), status.PERMISSION_DENIED, /^hotkey 5\w+: not admitted as a node \(not in the allowlist/],
      ['node id other than the signer', () => unary(coord, 'Heartbeat', { nodeId: G, taskId: '' }), status.PERMISSION_DENIED, /^node_id: expected the signing hotkey's address 5\w+, got "5\w+"$/],
      // Shards and leases.
      ['StreamShard, empty id', () => shardWith(null, ''), status.INVALID_ARGUMENT, /^shard_id: expected a shard id from the manifest, got an empty string$/],
      ['StreamShard, no lease', () => shardWith(null), status.PERMISSION_DENIED, /^lease: expected a shard lease signed by the coordinator/],
      ['StreamShard, forged lease', () => shardWith({ ...lease(mallory!, D, P, [shard]), coordinator: leaseKey!.address }), status.UNAUTHENTICATED, /^lease\.signature: expected the coordinator's signature over the lease's fields, got one that does not verify/],
      ['StreamShard, lease of another coordinator', () => shardWith(lease(mallory!, D, P, [shard])), status.UNAUTHENTICATED, /^lease\.signature: expected a lease signed by the coordinator's key 5\w+, got one from "5\w+"$/],
      ['StreamShard, expired lease', () => shardWith(lease(leaseKey!, D, P, [shard], Date.now() - 1_000)), status.PERMISSION_DENIED, /^lease\.expires_unix_ms: expected a time still to come, got \d+\.\d s ago \(an expired lease\)$/],
      ['StreamShard, foreign lease', () => shardWith(lease(leaseKey!, 'elsewhere', P, [shard])), status.PERMISSION_DENIED, /^lease\.dataset_node_id: expected this node, 5\w+, got "elsewhere"/],
      ['StreamShard, another trainer\'s lease', () => shardWith(lease(leaseKey!, D, G, [shard])), status.PERMISSION_DENIED, /^lease\.trainer: expected the signing hotkey 5\w+, got "5\w+" \(another trainer's lease\)$/],
      ['StreamShard, from a chunk past the shard\'s last', () => shardWith(lease(leaseKey!, D, P, [shard]), shard, 1_000_000), status.INVALID_ARGUMENT, /^from_chunk: expected a chunk index from 0 to \d+ \(the shard is \d+ chunks\), got 1000000$/],
      ['StreamShard, unknown shard', () => shardWith(lease(leaseKey!, D, P, ['nope']), 'nope'), status.NOT_FOUND, /^shard nope: not in this node's manifest$/],
      // Job specs and jobs.
      ['SubmitJob, not YAML', () => unary(jobs, 'SubmitJob', { spec: 'task: [exercise' }), status.INVALID_ARGUMENT, /^spec: expected a YAML or JSON job spec, got /],
      ['SubmitJob, unknown field', () => unary(jobs, 'SubmitJob', { spec: spec('epochs: 3') }), status.INVALID_ARGUMENT, /^job\.epochs: expected no such field \(known: rounds, cohort, .*\), got 3$/],
      ['SubmitJob, unknown task', () => unary(jobs, 'SubmitJob', { spec: 'task: juggling' }), status.INVALID_ARGUMENT, /^job\.task: expected one of exercise, pose, worksteps, got "juggling"$/],
      ['SubmitJob, minTrainers above cohort', () => unary(jobs, 'SubmitJob', { spec: spec('cohort: 2\nminTrainers: 3') }), status.INVALID_ARGUMENT, /^job\.minTrainers: expected at most cohort \(2\), got 3$/],
      // Within the parameter and FLOP budgets; its validation gradient at batch 64 took the wasm backend past 4 GiB.
      ['SubmitJob, activations past the budget', () => unary(jobs, 'SubmitJob', { spec: 'task: pose\nrounds: 1\nmodel: { family: cnn, widths: [1024, 1024, 1024, 1024] }' }), status.INVALID_ARGUMENT,
        /^model: expected at most 1,024 MiB of activations for a step at batch 64 \(the coordinator's --max-activation-bytes budget\), got [\d,.]+ MiB/],
      ['SubmitJob, over the parameter budget', () => unary(jobs, 'SubmitJob', { spec: spec('model: { family: mlp, hidden: [4096, 4096] }') }), status.INVALID_ARGUMENT, /^model: expected at most 5,000,000 parameters \(the coordinator's --max-params budget\), got 23,\d{3},\d{3} parameters$/],
      ['SubmitJob, over the FLOP budget', () => unary(jobs, 'SubmitJob', { spec: `task: pose\nsecureAggregation: { enabled: false }\nmodel: { family: layers, topology: ${topology([64, 64, 3], [['Conv2D', { filters: 512, kernel_size: [11, 11], padding: 'same' }], ['GlobalAveragePooling2D', {}], ['Dense', { units: 34, activation: 'sigmoid' }]])} }` }),
        status.INVALID_ARGUMENT, /^model: expected at most 1,000,000,000 forward FLOPs a sample \(the coordinator's --max-flops budget\), got 1,5\d\d,\d{3},\d{3} FLOPs$/],
      ['SubmitJob, a layer type not allowed', () => unary(jobs, 'SubmitJob', { spec: spec(`model: { family: layers, topology: ${topology(X, [['Reshape', { target_shape: [X[0]! / 51, 51] }], ['LSTM', { units: 8 }], ['Dense', { units: 7, activation: 'softmax' }]])} }`) }),
        status.INVALID_ARGUMENT, /^model\.topology layer 1 \(LSTM\)\.class_name: expected one of InputLayer, Dense, .*, got "LSTM"$/],
      ['SubmitJob, a layer the ONNX export cannot write', () => unary(jobs, 'SubmitJob', { spec: spec(`model: { family: layers, topology: ${topology(X, [['Reshape', { target_shape: [X[0]! / 51, 51] }], ['BatchNormalization', { axis: 1 }], ['Flatten', {}], ['Dense', { units: 7, activation: 'softmax' }]])} }`) }),
        status.INVALID_ARGUMENT, /^model\.topology layer 1 \(BatchNormalization\): expected a layer the ONNX export can write \(every model is exported to ONNX beside TF\.js\), got BatchNormalization over axis 1 \(only the last axis, the channels, is exported\)$/],
      ['SubmitJob, input shape not the task\'s', () => unary(jobs, 'SubmitJob', { spec: spec(`model: { family: layers, topology: ${topology([100], [['Dense', { units: 7, activation: 'softmax' }]])} }`) }),
        status.INVALID_ARGUMENT, new RegExp(`^model input shape: expected \\[${X[0]}\\] \\(the task's input\\), got \\[100\\]$`)],
      ['SubmitJob, spec over 1 MiB', () => unary(jobs, 'SubmitJob', { spec: `# ${'x'.repeat(1 << 20)}\ntask: exercise` }), status.INVALID_ARGUMENT, /^spec: expected at most 1048576 bytes, got 1048593 bytes$/],
      ['SubmitJob, message over the transport limit', () => {
        const big = { spec: 'x'.repeat(5 << 20) };
        return grpcError(rawUnary(unlimited, 'SubmitJob', big, sign(unlimited, 'SubmitJob', prober!, big)));
      }, status.RESOURCE_EXHAUSTED, /^Received message larger than max \(\d+ vs \d+\)$/],
      ['SubmitJob, job id taken', () => unary(jobs, 'SubmitJob', { spec: spec('id: job-1') }), status.ALREADY_EXISTS, /^job job-1: already exists; expected a new job id/],
      ['CancelJob, unknown job', () => unary(jobs, 'CancelJob', { jobId: 'ghost-job' }), status.NOT_FOUND, /^job ghost-job: not found$/],
      ['GetJob, bad id', () => unary(jobs, 'GetJob', { jobId: '../etc' }), status.INVALID_ARGUMENT, /^job_id: expected a job id/],
      ['DownloadModel, unknown format', () => stream(jobs, 'DownloadModel', { jobId: 'job-1', format: 'keras' }), status.INVALID_ARGUMENT, /^format: expected one of tfjs, onnx, all \(or empty for all\), got "keras"$/],
      ['DownloadModel, job not done', () => stream(jobs, 'DownloadModel', { jobId: 'job-1' }), status.FAILED_PRECONDITION, /^job job-1: expected a DONE job \(its model is written when the last round completes\), got RUNNING$/],
    ];
    const got: string[] = [];
    const check = async (table: typeof cases) => {
      for (const [name, call, code, details] of table) {
        const err = await call();
        got.push(`${name}: ${status[err.code]} ${err.details}`);
        expect({ name, code: status[err.code], details: details.test(err.details) ? 'as expected' : err.details }).toEqual({ name, code: status[code], details: 'as expected' });
      }
    };
    await check(cases);
    expect((await callUnary(jobs, 'ListJobs', {}, T)).jobs.map((j) => j.jobId)).toEqual(['job-1']);

    // The prober keeps its heartbeats up and is dealt a task in round 1 beside two honest trainers.
    let beating = true;
    const beat = (async () => {
      while (beating) {
        await callUnary(coord, 'Heartbeat', hb, T).catch(() => {});
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    for (const t of ['T0', 'T1']) await h.trainer(c.address, '', ['--hotkey-uri', `//${t}`]);
    const res = await callUnary(coord, 'GetTask', { nodeId: P, waitMs: 20_000 }, { timeoutMs: 30_000 });
    expect(res.result).toBe('task');
    const task = res.task as Task;
    const dealt = task.shards.reduce((n, x) => n + x.numSamples, 0);
    const N = c.job.paramCount;
    const update = (over: Partial<UpdateHeader>, delta: Float32Array = new Float32Array(N), edit?: (msgs: BlobPart<UpdateHeader>[]) => BlobPart<UpdateHeader>[]) => {
      const b = encodeBlob(float32ToBytes(delta), 64 * 1024);
      const msgs: BlobPart<UpdateHeader>[] = [
        { part: 'header', header: { nodeId: P, taskId: task.taskId, jobId: task.jobId, round: 1, numSamples: 10, trainLoss: 1, numParams: N, blob: b.header, trainSeconds: 1, masked: false, ...over } },
        ...b.chunks.map((chunk) => ({ part: 'chunk' as const, chunk })),
      ];
      return upload(edit ? edit(msgs) : msgs);
    };
    const nan = new Float32Array(N);
    nan[5] = NaN;
    const inRound: typeof cases = [
      ['SubmitUpdate, wrong vector length', () => update({ numParams: N - 1 }), status.INVALID_ARGUMENT, new RegExp(`^update length: expected ${N} float32 parameters, got ${N - 1}$`)],
      ['SubmitUpdate, truncated stream', () => update({}, undefined, (m) => m.slice(0, -1)), status.INVALID_ARGUMENT, /^blob length: expected \d+ bytes, got \d+$/],
      ['SubmitUpdate, digest mismatch', () => update({}, undefined, (m) => [{ ...m[0]!, header: { ...m[0]!.header!, blob: { ...m[0]!.header!.blob!, sha256: Buffer.alloc(32, 7) } } } as BlobPart<UpdateHeader>, ...m.slice(1)]),
        status.INVALID_ARGUMENT, /^blob: expected sha256 (07){32}, got [0-9a-f]{64}$/],
      ['SubmitUpdate, non-finite numbers', () => update({}, nan), status.INVALID_ARGUMENT, /^update: expected finite numbers, got NaN at parameter 5$/],
      ['SubmitUpdate, oversized chunk', () => update({}, undefined, (m) => [m[0]!, { part: 'chunk', chunk: { index: 0, data: Buffer.alloc((4 << 20) + 100) } }]),
        status.RESOURCE_EXHAUSTED, /^chunk size: expected at most 4194304 bytes, got 4194404$/],
      ['SubmitUpdate, another task', () => update({ taskId: 'not-mine' }), status.NOT_FOUND, new RegExp(`^task not-mine: not assigned to node ${P}$`)],
      ['SubmitUpdate, wrong round', () => update({ round: 2 }), status.FAILED_PRECONDITION, /^job job-1: expected an update for round 1 \(in TRAIN\), got round 2$/],
      ['SubmitUpdate, no samples', () => update({ numSamples: 0 }), status.INVALID_ARGUMENT, /^num_samples: expected a count from 1 to \d+ \(the samples of the shards dealt to this task\), got 0$/],
      // A plaintext update's weight: a trainer that claims more samples than it was dealt would outweigh the others.
      ['SubmitUpdate, more samples than dealt', () => update({ numSamples: dealt + 1 }), status.INVALID_ARGUMENT, new RegExp(`^num_samples: expected a count from 1 to ${dealt} .*, got ${dealt + 1}$`)],
      ['SubmitUpdate, a blob of 2^64-1 bytes', () => update({}, undefined, (m) => [{ ...m[0]!, header: { ...m[0]!.header!, blob: { ...m[0]!.header!.blob!, totalBytes: '18446744073709551615' as unknown as number } } } as BlobPart<UpdateHeader>]),
        status.INVALID_ARGUMENT, /^blob\.total_bytes: expected a non-negative integer below 2\^53, got 18446744073709552000 \(rounded; 2\^53 or more\)$/],
      ['SubmitUpdate, masked input to a plaintext job', () => update({ masked: true }), status.INVALID_ARGUMENT, /^masked: expected a plaintext update \(secure aggregation is off\), got a masked input$/],
    ];
    await check(inRound);
    expect(got.length).toBeGreaterThanOrEqual(55);

    // Still serving; no job added; once the prober goes quiet the round completes with the others.
    expect((await callUnary(data, 'GetManifest', {}, T)).shards.length).toBeGreaterThan(0);
    expect((await callUnary(jobs, 'ListJobs', {}, T)).jobs.map((j) => j.jobId)).toEqual(['job-1']);
    beating = false;
    await beat;
    expect(await c.done).toBe('DONE');
    expect(c.job.history.map((r) => [r.round, r.participants, r.cohort, [...r.reporters].sort()])).toEqual([[1, 2, 3, [t0!.address, t1!.address].sort()]]);
    await c.close();
    const store = new CoordinatorStore(path.join(h.dir, 'out'));
    try {
      expect(store.jobs().map((j) => [j.jobId, j.state])).toEqual([['job-1', 'DONE']]);
      expect(store.rounds('job-1').map((r) => r.round)).toEqual([1]);
    } finally {
      store.close();
    }
  }, 120_000);
});
