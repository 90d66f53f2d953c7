/**
 * `npm run bench:attack`: a coordinator process (with a dataset node, both their own processes)
 * under the attacks of a hostile peer, first with its default limits, then with the limits
 * raised out of reach (what it held before it had them), in the same run. For each attack it
 * prints the coordinator's resident memory before, at its peak during and 15 s after, the
 * latency of a well-behaved client's GetStatus during (p50 / p99 / max), and how the attacking
 * streams ended. Attacks:
 *   partial: --streams (1,000) streams on one connection, each a 4 MiB message one byte short;
 *   uploads: 100 uploads of the prober's own task at once, each one byte short;
 *   slow:    a message sent a byte every 100 ms (for up to 75 s).
 */
import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { spawnRole, waitListening } from '../bin/demo.js';
import { callUnary, encodeBlob, makeClient, CoordinatorClient, type BlobPart, type Task, type UpdateHeader } from '../src/wire/index.js';
import { openUpload, partialMessages, probe, quantile, rssOf, slowMessage, type StreamEnd } from './attack-kit.js';

const { values } = parseArgs({ options: { streams: { type: 'string', default: '1000' }, 'after-s': { type: 'string', default: '15' } } });
const STREAMS = Number(values.streams), AFTER_MS = Number(values['after-s']) * 1000;
const MIB = 1 << 20;
const SUBMIT = '/actiquest.v1.Coordinator/SubmitUpdate';
const mb = (b: number) => `${(b / MIB).toFixed(0)} MiB`;

const OFF = ['--max-streams-per-connection', '10000', '--max-buffered-mib', '65536', '--max-buffered-mib-per-connection', '65536',
  '--message-deadline-s', '3600', '--max-upload-mib', '65536', '--upload-idle-s', '3600'];

async function run(label: string, limits: string[]): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-bench-attack-'));
  const children: ChildProcess[] = [];
  try {
    const coordinator = spawnRole(['coordinator', '--listen', '127.0.0.1:0', '--metrics-port', '-1', '--out', path.join(dir, 'out'),
      '--secure-aggregation', 'false', '--rounds', '1', '--cohort', '1', '--min-trainers', '1', '--hidden', '256,256', '--local-epochs', '1',
      '--heartbeat-interval-ms', '500', '--live-timeout-ms', '600000', '--round-timeout', '600', ...limits], path.join(dir, 'coordinator.log'));
    children.push(coordinator);
    const { grpc: address } = await waitListening(coordinator);
    const dataset = spawnRole(['dataset', '--listen', '127.0.0.1:0', '--metrics-port', '-1', '--coordinator', address, '--seed', 'bench',
      '--data-dir', path.join(dir, 'data')], path.join(dir, 'dataset.log'));
    children.push(dataset);
    await waitListening(dataset);
    const coord = makeClient(CoordinatorClient, address);
    await callUnary(coord, 'RegisterTrainer', { nodeId: 'prober', capacity: { samplesPerSecond: 10 } }, { timeoutMs: 10_000 });
    const beat = setInterval(() => void callUnary(coord, 'Heartbeat', { nodeId: 'prober', taskId: '' }, { timeoutMs: 10_000 }).catch(() => {}), 500);
    let task: Task | null = null;
    while (!task) task = (await callUnary(coord, 'GetTask', { nodeId: 'prober', waitMs: 2000 }, { timeoutMs: 10_000 })).task ?? null;
    const pid = coordinator.pid!;

    console.log(`\n== ${label}`);
    console.log('  attack                                   RSS before    peak   after   GetStatus p50 / p99 / max ms   how the attacking streams ended');
    const attack = async (name: string, f: () => Promise<string>) => {
      await new Promise((r) => setTimeout(r, 2000));
      const before = rssOf(pid);
      const watch = probe(address, pid, 50);
      const ended = await f();
      const seen = await watch.stop();
      await new Promise((r) => setTimeout(r, AFTER_MS));
      const after = rssOf(pid);
      const lat = seen.latencies;
      console.log(`  ${name.padEnd(40)} ${mb(before).padStart(10)} ${mb(seen.peakRss).padStart(7)} ${mb(after).padStart(7)}   ${quantile(lat, 0.5).toFixed(1).padStart(6)} / ${quantile(lat, 0.99).toFixed(1).padStart(6)} / ${Math.max(...lat).toFixed(1).padStart(6)}${seen.failures.length ? ` (${seen.failures.length} failed)` : ''}   ${ended}`);
    };
    const summary = (ends: StreamEnd[]) => {
      const reset = ends.filter((e) => e.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM).length;
      const status = ends.filter((e) => e.grpcStatus !== null && e.rstCode !== http2.constants.NGHTTP2_ENHANCE_YOUR_CALM).length;
      return `${reset} reset, ${status} given a status, ${ends.length - reset - status} still open when the attacker left`;
    };
    await attack(`partial: ${STREAMS} x 4 MiB less a byte`, async () => summary(await partialMessages(address, SUBMIT, STREAMS, 4 * MIB, 20_000)));
    await attack('slow: a byte every 100 ms', async () => {
      // Longer than the 60 s a message may take by default.
      const e = await slowMessage(address, SUBMIT, 4096, 100, 75_000);
      return e.rstCode !== null ? `reset after ${(e.ms / 1000).toFixed(1)} s` : 'still open after 75 s';
    });
    await attack('uploads: 100 of one task, each a byte short', async () => {
      const bytes = task.model!.numParams * 4;
      const { header: blob, chunks } = encodeBlob(Buffer.alloc(bytes));
      const header: BlobPart<UpdateHeader> = { part: 'header', header: { nodeId: 'prober', taskId: task.taskId, jobId: task.jobId, round: task.round, numSamples: 1, trainLoss: 0, numParams: task.model!.numParams, blob, trainSeconds: 1, masked: false } };
      const last = chunks[chunks.length - 1]!;
      const short = [header, ...chunks.slice(0, -1).map((chunk) => ({ part: 'chunk' as const, chunk })), { part: 'chunk' as const, chunk: { ...last, data: last.data.subarray(1) } }];
      const ends = await Promise.all(Array.from({ length: 100 }, () => openUpload(coord, short, 20_000)));
      const by = new Map<string, number>();
      for (const e of ends) by.set(e ? `status ${e.code}` : 'still open', (by.get(e ? `status ${e.code}` : 'still open') ?? 0) + 1);
      return [...by].map(([k, n]) => `${n} ${k}`).join(', ');
    });
    clearInterval(beat);
    coord.close();
  } finally {
    for (const c of children) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`bench:attack on ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores; RSS after is ${AFTER_MS / 1000} s after each attack`);
await run('default limits', []);
await run('limits raised out of reach (the coordinator without them)', OFF);
process.exit(0);
