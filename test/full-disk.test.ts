/**
 * A coordinator whose --out is a small tmpfs that fills up mid-job, after SQLite's WAL has
 * wrapped (the WAL is then reused in place, so the store's own writes still fit while a new
 * checkpoint file does not). The tmpfs lives in a mount namespace of its own, made with
 * `unshare` and held by a sleeping process; the coordinator is started in it with `nsenter`,
 * and the test reaches its files through /proc/<holder>/root.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Harness, kill } from './helpers.js';
import { spawnRole, waitListening } from '../bin/demo.js';
import { callUnary, makeClient, CoordinatorClient } from '../src/wire/index.js';

let h: Harness;
afterEach(async () => h.close());

const T = { timeoutMs: 10_000 };

/** A process holding a new mount namespace with a `sizeMiB` tmpfs mounted on `dir`. */
async function tmpfsHolder(dir: string, sizeMiB: number): Promise<ChildProcess> {
  fs.mkdirSync(dir, { recursive: true });
  const holder = spawn('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', `mount -t tmpfs -o size=${sizeMiB}m tmpfs "$0" && echo mounted && exec sleep 100000`, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  holder.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`unshare/mount failed (exit ${code}): ${err}`)));
  });
  return holder;
}

describe('a full disk', () => {
  it('after the WAL wraps: no round recorded against a short checkpoint, no temporary file left, the job waits for space serving and goes on, and the store opens again', async () => {
    h = new Harness();
    const dir = path.join(h.dir, 'out');
    const holder = await tmpfsHolder(dir, 24);
    h.defer(() => kill(holder, 'SIGKILL'));
    const seen = `/proc/${holder.pid}/root${dir}`;
    const wrapper = ['nsenter', '-t', String(holder.pid), '-U', '-m', '--preserve-credentials'];
    const jobFlags = ['--secure-aggregation', 'false', '--rounds', '100000', '--cohort', '2', '--min-trainers', '2', '--hidden', '8', '--local-epochs', '1',
      '--validation-samples', '70', '--max-attempts', '2'];
    const child = spawnRole(['coordinator', '--listen', '127.0.0.1:0', '--metrics-port', '-1', '--out', dir, '--validation-seed', 'disk', ...jobFlags],
      h.logFile('coordinator'), { wrapper });
    h.defer(() => kill(child, 'SIGKILL'));
    const { grpc: address } = await waitListening(child);
    const coord = makeClient(CoordinatorClient, address);
    h.defer(() => coord.close());
    const job = async () => (await callUnary(coord, 'GetStatus', {}, T)).jobs[0]!;
    const untilJob = async (what: string, ok: (j: Awaited<ReturnType<typeof job>>) => boolean, ms = 120_000) => {
      const end = Date.now() + ms;
      for (let j = await job(); !ok(j); j = await job()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; job ${JSON.stringify({ state: j.state, done: j.roundsDone })}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    await h.dataset(address, 'ds-a');
    for (const t of ['t0', 't1']) await h.trainer(address, t);
    // Rounds until SQLite's WAL has wrapped: its header's checkpoint sequence number (bytes 12-15)
    // counts the times it started again from its first frame. (Read as a file: a second SQLite
    // connection from outside the namespace would not share the coordinator's locks.)
    const walSeq = () => {
      try {
        return fs.readFileSync(path.join(seen, 'coordinator.db-wal')).readUInt32BE(12);
      } catch {
        return 0;
      }
    };
    const endWrap = Date.now() + 180_000;
    while (walSeq() < 1) {
      if (Date.now() > endWrap) throw new Error(`the WAL did not wrap in 180 s (${(await job()).roundsDone} rounds)`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // Fill the disk.
    const filler = path.join(seen, 'filler');
    const fd = fs.openSync(filler, 'w');
    try {
      for (;;) fs.writeSync(fd, Buffer.alloc(1 << 20));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      fs.closeSync(fd);
    }
    const full = (await job()).roundsDone;
    const log = () => fs.readFileSync(h.logFile('coordinator'), 'utf8');
    const endFull = Date.now() + 60_000;
    while (!/"msg":"round failed".*(ENOSPC|SQLITE_FULL|full)/.test(log()) && Date.now() < endFull) await new Promise((r) => setTimeout(r, 200));
    expect(log()).toMatch(/"msg":"round failed".*(ENOSPC|SQLITE_FULL|full)/);
    // Waiting for space, for longer than two attempts would take: serving, recording nothing.
    await new Promise((r) => setTimeout(r, 8000));
    const t0 = performance.now();
    const during = await job();
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(during.state).toBe('RUNNING');
    expect(during.roundsDone).toBeLessThanOrEqual(full + 1);
    expect(fs.readdirSync(path.join(seen, 'checkpoints')).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    // Space returns: the job goes on by itself.
    fs.rmSync(filler);
    await untilJob('two more rounds', (j) => j.roundsDone >= during.roundsDone + 2);
    expect(fs.readdirSync(path.join(seen, 'checkpoints')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    await kill(child, 'SIGTERM');
    // Every recorded round names a checkpoint whose bytes match its digest. The store is read
    // inside the namespace: SQLite resolves /proc/<pid>/root to / and would open another file.
    const dump = spawnSync('nsenter', [...wrapper.slice(1), process.execPath, '-e',
      'const D = require(process.argv[2]); const db = new D(process.argv[1], { readonly: true }); process.stdout.write(JSON.stringify(db.prepare("SELECT round, checkpoint FROM rounds WHERE job_id = ? ORDER BY round").all("job-1")))',
      path.join(dir, 'coordinator.db'), createRequire(import.meta.url).resolve('better-sqlite3')], { encoding: 'utf8' });
    expect(dump.stderr).toBe('');
    const rounds = JSON.parse(dump.stdout) as { round: number; checkpoint: string }[];
    const last = rounds.length;
    expect(last).toBeGreaterThan(during.roundsDone);
    expect(rounds.map((r) => r.round)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    for (const r of rounds) expect(createHash('sha256').update(fs.readFileSync(path.join(seen, 'checkpoints', r.checkpoint))).digest('hex')).toBe(r.checkpoint);
    // And the coordinator starts again on it, resuming after the last round.
    const again = spawnRole(['coordinator', '--listen', '127.0.0.1:0', '--metrics-port', '-1', '--out', dir, '--validation-seed', 'disk', ...jobFlags],
      h.logFile('coordinator-again'), { wrapper });
    h.defer(() => kill(again, 'SIGKILL'));
    await waitListening(again);
    expect(fs.readFileSync(h.logFile('coordinator-again'), 'utf8')).toContain(`"msg":"job resumed","jobId":"job-1","afterRound":${last}`);
  }, 300_000);
});
