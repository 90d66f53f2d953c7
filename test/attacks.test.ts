/**
 * A coordinator process under the attacks a hostile peer can make with bytes alone: many
 * streams each holding an incomplete message, a message sent a byte at a time, a hundred
 * uploads of one task each one byte short, an upload that stops sending, and more calls than
 * one hotkey may have. Each attack is refused with its status; meanwhile a well-behaved client
 * is answered within 1 s and the coordinator's memory stays bounded; afterwards the round ends
 * with the honest trainers and the store holds exactly that round of that job.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import http2 from 'node:http2';
import { status } from '@grpc/grpc-js';
import { Harness, grpcError, kill } from './helpers.js';
import { dev } from './signed-fixture.js';
import { spawnRole, waitListening } from '../bin/demo.js';
import { openUpload, partialMessages, probe, quantile, rssOf, slowMessage } from '../bench/attack-kit.js';
import { callServerStream, callUnary, encodeBlob, makeClient, CoordinatorClient, type BlobPart, type Task, type UpdateHeader } from '../src/wire/index.js';
import { CoordinatorStore } from '../src/store/index.js';

let h: Harness;
afterEach(async () => h.close());

const T = { timeoutMs: 10_000 };
const MIB = 1 << 20;
const SUBMIT = '/actiquest.v1.Coordinator/SubmitUpdate';

describe('a coordinator under attack', () => {
  it('bounds what incomplete messages, slow messages and short uploads hold, answers within 1 s throughout, and records only the honest round', async () => {
    h = new Harness();
    const out = path.join(h.dir, 'out');
    const child = spawnRole(['coordinator', '--listen', '127.0.0.1:0', '--metrics-port', '-1', '--out', out, '--validation-seed', 'attacks',
      '--secure-aggregation', 'false', '--rounds', '1', '--cohort', '3', '--min-trainers', '2', '--hidden', '16', '--local-epochs', '1',
      '--validation-samples', '70', '--exit-when-done', '--heartbeat-interval-ms', '200', '--live-timeout-ms', '1500', '--cohort-wait', '30',
      '--upload-idle-s', '2', '--message-deadline-s', '2'], h.logFile('coordinator'));
    h.defer(() => kill(child, 'SIGKILL'));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const { grpc: address } = await waitListening(child);
    await h.dataset(address, 'ds-a');

    // The prober registers as a trainer and is dealt a task beside two honest trainers.
    const coord = makeClient(CoordinatorClient, address);
    h.defer(() => coord.close());
    await callUnary(coord, 'RegisterTrainer', { nodeId: 'prober', capacity: { samplesPerSecond: 10 } }, T);
    let beating = true;
    const beats = (async () => {
      while (beating) {
        await callUnary(coord, 'Heartbeat', { nodeId: 'prober', taskId: '' }, T).catch(() => {});
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const polled = (async () => {
      for (;;) {
        const res = await callUnary(coord, 'GetTask', { nodeId: 'prober', waitMs: 2000 }, T);
        if (res.task) return res.task;
      }
    })();
    for (const t of ['t0', 't1']) await h.trainer(address, t);
    const task: Task = await polled;
    const pid = child.pid!;
    const baseline = rssOf(pid);
    const watch = probe(address, pid);

    // 1. 200 streams on one connection, each a 4 MiB message one byte short (800 MiB unbounded).
    const partial = await partialMessages(address, SUBMIT, 200, 4 * MIB, 30_000);
    const reset = partial.filter((e) => e.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // Four such messages fill a connection's 16 MiB: the rest are reset as they pass it.
    expect(reset.length).toBeGreaterThanOrEqual(190);
    // 2. A message sent a byte every 100 ms: reset once it has taken the 2 s a message may.
    const slow = await slowMessage(address, SUBMIT, 1024, 100, 15_000);
    expect(slow.rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(slow.ms).toBeGreaterThan(1900);
    expect(slow.ms).toBeLessThan(8000);

    // 3. 100 uploads of the prober's own task, each one byte short: one at a time per task, each
    // newer upload replaces the older, and the last is ended when it stops sending.
    const bytes = (task.model!.numParams) * 4;
    const { header: blob, chunks } = encodeBlob(Buffer.alloc(bytes), 1024);
    const header: BlobPart<UpdateHeader> = {
      part: 'header', header: { nodeId: 'prober', taskId: task.taskId, jobId: task.jobId, round: task.round, numSamples: 1, trainLoss: 0, numParams: task.model!.numParams, blob, trainSeconds: 1, masked: false },
    };
    const last = chunks[chunks.length - 1]!;
    const short = [header, ...chunks.slice(0, -1).map((chunk) => ({ part: 'chunk' as const, chunk })), { part: 'chunk' as const, chunk: { ...last, data: last.data.subarray(1) } }];
    const uploads = await Promise.all(Array.from({ length: 100 }, () => openUpload(coord, short, 20_000)));
    const replaced = uploads.filter((u) => u?.code === status.RESOURCE_EXHAUSTED);
    expect(replaced.length).toBe(99);
    expect(replaced[0]!.details).toBe(`upload for task ${task.taskId}: replaced by a newer upload for the same task (one at a time)`);
    const idle = uploads.filter((u) => u?.code === status.DEADLINE_EXCEEDED);
    expect(idle).toHaveLength(1);
    expect(idle[0]!.details).toBe('upload: expected a chunk at least every 2 s (--upload-idle-s), got none for that long');
    // 4. A header and then nothing: ended after 2 s.
    const silent = await openUpload(coord, [header], 20_000);
    expect(silent).toMatchObject({ code: status.DEADLINE_EXCEEDED });
    expect(silent!.ms).toBeGreaterThan(1900);

    const seen = await watch.stop();
    expect(seen.failures).toEqual([]);
    expect(quantile(seen.latencies, 1)).toBeLessThan(1000);
    // Unbounded, the first attack alone held 800 MiB in the coordinator.
    expect(seen.peakRss - baseline).toBeLessThan(200 * MIB);

    // The prober goes quiet; the round ends with the honest trainers, and the job with it.
    beating = false;
    await beats;
    expect(await exited).toBe(0);
    const store = new CoordinatorStore(out);
    try {
      expect(store.jobs().map((j) => [j.jobId, j.state])).toEqual([['job-1', 'DONE']]);
      const rounds = store.rounds<{ reporters: string[] }, unknown>('job-1');
      expect(rounds.map((r) => r.round)).toEqual([1]);
      expect([...rounds[0]!.record.reporters].sort()).toEqual(['t0', 't1']);
    } finally {
      store.close();
    }
    const log = fs.readFileSync(h.logFile('coordinator'), 'utf8');
    expect(log).toContain('"msg":"stream reset","reason":"connection-bytes"');
    expect(log).toContain('"msg":"stream reset","reason":"slow-message"');
  }, 180_000);

  it('refuses a hotkey more calls at once than --max-calls-per-node, and counts every kind of call back when it ends', async () => {
    h = new Harness();
    const [node, other] = await Promise.all(['Busy', 'Other'].map(dev));
    const allow = path.join(h.dir, 'allowlist');
    fs.writeFileSync(allow, `${node!.address}\n${other!.address}\n`);
    const c = await h.coordinator(['--auth', 'signed', '--allowlist', allow, '--lease-key-uri', '//Lease', '--max-calls-per-node', '3', '--hidden', '8', '--rounds', '1']);
    const busy = makeClient(CoordinatorClient, c.address, undefined, node);
    const calm = makeClient(CoordinatorClient, c.address, undefined, other);
    h.defer(() => { busy.close(); calm.close(); });
    for (const [client, id] of [[busy, node!.address], [calm, other!.address]] as const) {
      await callUnary(client, 'RegisterTrainer', { nodeId: id, capacity: { samplesPerSecond: 10 } }, T);
    }
    // Many calls of every kind, one after another: each is counted back when it ends.
    for (let i = 0; i < 10; i++) {
      await callUnary(busy, 'Heartbeat', { nodeId: node!.address, taskId: '' }, T);
      await grpcError((async () => { for await (const _ of callServerStream(busy, 'FetchGlobalModel', { jobId: 'none', round: 0 }, T)) { /* drain */ } })());
    }
    // Three long polls take the hotkey's three calls; a fourth call is refused, another hotkey's is not.
    const polls = [0, 1, 2].map(() => callUnary(busy, 'GetTask', { nodeId: node!.address, waitMs: 3000 }, T));
    await new Promise((r) => setTimeout(r, 500));
    const refused = await grpcError(callUnary(busy, 'Heartbeat', { nodeId: node!.address, taskId: '' }, T));
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toBe(`hotkey ${node!.address}: 3 calls in progress, the most one node may have (--max-calls-per-node); retry when one ends`);
    await callUnary(calm, 'Heartbeat', { nodeId: other!.address, taskId: '' }, T);
    await Promise.all(polls);
    await callUnary(busy, 'Heartbeat', { nodeId: node!.address, taskId: '' }, T);
  }, 60_000);
});
