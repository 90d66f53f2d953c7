/**
 * `npm run bench:load`: one coordinator (its own process) under many lightweight simulated
 * trainers on loopback. Each registers, then for the whole run heartbeats at the interval the
 * coordinator asked for and long-polls GetTask (no dataset node is attached, so no round starts
 * and every poll waits its full time). Prints the calls made, the errors (the aim: 0), and p50 /
 * p99 / max latency per method; for GetTask, the time beyond the wait it asked for.
 *
 * Baseline in the same run: the same heartbeat rate from one client that is alone on the
 * server (the first second, before the others start). Options: --trainers 200 --seconds 60
 * --wait-ms 2000 --auth open|signed. Signed: every simulated trainer signs every call, and the
 * coordinator verifies each signature and nonce; the load runs twice against the same
 * coordinator, first with each call signed by the trainer's sr25519 hotkey (the baseline), then
 * with its ed25519 session key (what nodes do), and the two are compared. `--phases N` repeats
 * the session-key phase N times against the same coordinator (each a fresh burst of
 * registrations and new session keys), stopping at the first phase with an error.
 */
import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { spawnRole, waitListening } from '../bin/demo.js';
import { callUnary, makeClient, CoordinatorClient } from '../src/wire/index.js';
import { loadSigner } from '../src/chain/index.js';

/**
 * `AQ_CPU_PROF_DIR`: every process spawned writes a CPU profile there. `AQ_NODE_ARGS`: more
 * Node flags for the coordinator (`--perf-basic-prof`, for `perf` on a stuck process);
 * `AQ_KEEP_S`: after a phase with errors, the coordinator is left running that long first. A
 * coordinator whose event loop stops says where in its log (its stall watchdog), which the bench
 * prints when calls fail.
 */
const PROF = { cpuProfDir: process.env.AQ_CPU_PROF_DIR, nodeArgs: process.env.AQ_NODE_ARGS?.split(' ').filter(Boolean) };

const { values } = parseArgs({ options: {
  trainers: { type: 'string', default: '200' },
  seconds: { type: 'string', default: '60' },
  'wait-ms': { type: 'string', default: '2000' },
  auth: { type: 'string', default: 'open' },
  phases: { type: 'string', default: '1' },
} });
const SIGNED = values.auth === 'signed';
const N = Number(values.trainers), SECONDS = Number(values.seconds), WAIT = Number(values['wait-ms']), PHASES = Number(values.phases);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-bench-load-'));
const child = spawnRole(['coordinator', '--listen', '127.0.0.1:0', '--metrics-port', '-1', '--out', path.join(dir, 'out'), '--cohort', String(N),
  '--min-trainers', '5', '--rounds', '1', '--auth', SIGNED ? 'signed' : 'open'], path.join(dir, 'coordinator.log'), PROF);
const { grpc: address } = await waitListening(child);

const latencies = new Map<string, number[]>();
const errors = new Map<string, number>();
const record = (method: string, ms: number) => (latencies.get(method) ?? latencies.set(method, []).get(method)!).push(ms);
const fail = (method: string, err: unknown) => {
  errors.set(`${method}: ${(err as Error).message.split('\n')[0]}`, (errors.get(`${method}: ${(err as Error).message.split('\n')[0]}`) ?? 0) + 1);
};
async function timed<T>(method: string, f: () => Promise<T>, extraMs = 0): Promise<T | undefined> {
  const t0 = performance.now();
  try {
    const out = await f();
    record(method, performance.now() - t0 - extraMs);
    return out;
  } catch (err) {
    fail(method, err);
    return undefined;
  }
}

let deadline = 0;
let sessions = true;
async function trainer(i: number): Promise<void> {
  const signer = SIGNED ? { ...(await loadSigner({ uri: `//sim-${i}` })), sessions } : null;
  // Its own connection, as a trainer process has (clients of one process share one otherwise,
  // and the coordinator allows 100 calls at once on a connection).
  const client = makeClient(CoordinatorClient, address, undefined, signer, undefined, { 'grpc.use_local_subchannel_pool': 1 });
  const nodeId = signer?.address ?? `sim-${String(i).padStart(4, '0')}`;
  const reg = await timed('RegisterTrainer', () => callUnary(client, 'RegisterTrainer', {
    nodeId, capacity: { samplesPerSecond: 100 + i, backend: 'sim', device: 'none' }, version: 'bench', identityKey: Buffer.alloc(0),
  }, { timeoutMs: 10_000 }));
  const interval = reg?.heartbeatIntervalMs || 1000;
  const beats = (async () => {
    // Spread the heartbeats over the interval.
    await new Promise((r) => setTimeout(r, (i * interval) / N));
    while (Date.now() < deadline) {
      await timed('Heartbeat', () => callUnary(client, 'Heartbeat', { nodeId, taskId: '' }, { timeoutMs: 10_000 }));
      await new Promise((r) => setTimeout(r, interval));
    }
  })();
  const polls = (async () => {
    while (Date.now() < deadline) {
      const t0 = performance.now();
      try {
        await callUnary(client, 'GetTask', { nodeId, waitMs: WAIT }, { timeoutMs: WAIT + 10_000 });
        record('GetTask (beyond its wait)', Math.max(0, performance.now() - t0 - WAIT));
      } catch (err) {
        fail('GetTask', err);
      }
    }
  })();
  await Promise.all([beats, polls]);
  client.close();
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

/** One load phase: the baseline client alone, then N trainers for SECONDS; prints its table. */
async function phase(label: string): Promise<{ p50: number; p99: number; errors: number }> {
  latencies.clear();
  errors.clear();
  // Baseline: one trainer alone for a few heartbeats.
  const aloneSigner = SIGNED ? { ...(await loadSigner({ uri: '//alone' })), sessions } : null;
  const alone = makeClient(CoordinatorClient, address, undefined, aloneSigner);
  const aloneId = aloneSigner?.address ?? 'alone';
  await callUnary(alone, 'RegisterTrainer', { nodeId: aloneId, capacity: { samplesPerSecond: 1, backend: 'sim', device: 'none' }, version: 'bench', identityKey: Buffer.alloc(0) }, { timeoutMs: 10_000 });
  const baseline: number[] = [];
  for (let k = 0; k < 50; k++) {
    const t0 = performance.now();
    await callUnary(alone, 'Heartbeat', { nodeId: aloneId, taskId: '' }, { timeoutMs: 10_000 });
    baseline.push(performance.now() - t0);
  }
  alone.close();

  console.log(`\n== load${label}: ${N} simulated trainers against one coordinator process for ${SECONDS} s (heartbeats at the coordinator's interval, GetTask long polls of ${WAIT} ms)`);
  deadline = Date.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(Array.from({ length: N }, (_, i) => trainer(i)));
  const wall = (performance.now() - started) / 1000;
  console.log('  method                       calls    calls/s    p50 ms    p99 ms    max ms');
  for (const [method, xs] of latencies) {
    console.log(`  ${method.padEnd(26)} ${String(xs.length).padStart(7)} ${(xs.length / wall).toFixed(0).padStart(10)} ${pct(xs, 0.5).toFixed(2).padStart(9)} ${pct(xs, 0.99).toFixed(2).padStart(9)} ${Math.max(...xs).toFixed(2).padStart(9)}`);
  }
  const total = [...errors.values()].reduce((a, b) => a + b, 0);
  console.log(`  errors: ${total}${total ? ` (${[...errors].map(([m, n]) => `${n} x ${m}`).join('; ')})` : ''}`);
  const beats = latencies.get('Heartbeat') ?? [];
  console.log(`  baseline, one client alone: Heartbeat p50 ${pct(baseline, 0.5).toFixed(2)} ms, p99 ${pct(baseline, 0.99).toFixed(2)} ms; under load p50 is ${(pct(beats, 0.5) / pct(baseline, 0.5)).toFixed(1)}x that`);
  return { p50: pct(beats, 0.5), p99: pct(beats, 0.99), errors: total };
}

let totalErrors = 0;
if (!SIGNED) {
  totalErrors += (await phase('')).errors;
} else {
  sessions = false;
  const hotkey = await phase(', each call signed by the sr25519 hotkey');
  sessions = true;
  totalErrors += hotkey.errors;
  // Each phase: every trainer anew (a fresh client and session key), re-registering in a burst.
  let session = { p50: NaN, p99: NaN, errors: 0 };
  for (let k = 1; k <= PHASES; k++) {
    session = await phase(`, each call signed by an ed25519 session key the hotkey certified${PHASES > 1 ? ` (phase ${k} of ${PHASES})` : ''}`);
    totalErrors += session.errors;
    if (session.errors > 0) break;
  }
  console.log(`\n== session keys against hotkey signatures, same coordinator, same load: Heartbeat p50 ${session.p50.toFixed(1)} against ${hotkey.p50.toFixed(1)} ms (${(hotkey.p50 / session.p50).toFixed(2)}x faster), p99 ${session.p99.toFixed(1)} against ${hotkey.p99.toFixed(1)} ms (${(hotkey.p99 / session.p99).toFixed(2)}x)`);
}
if (totalErrors > 0 && process.env.AQ_KEEP_S) {
  console.log(`\n== errors: the coordinator (pid ${child.pid}) is left running for ${process.env.AQ_KEEP_S} s`);
  await new Promise((r) => setTimeout(r, Number(process.env.AQ_KEEP_S) * 1000));
}
child.kill('SIGTERM');
if (totalErrors > 0) {
  // For diagnosis: what the coordinator last said.
  const lines = fs.readFileSync(path.join(dir, 'coordinator.log'), 'utf8').trimEnd().split('\n');
  console.log(`\n== the coordinator's log, last 30 of ${lines.length} lines\n${lines.slice(-30).join('\n')}`);
}
fs.rmSync(dir, { recursive: true, force: true });
process.exit(totalErrors === 0 ? 0 : 1);
