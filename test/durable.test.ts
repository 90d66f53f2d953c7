/**
 * The durable coordinator, with real processes: a coordinator process is killed with SIGKILL
 * in the middle of a round and started again on the same --out and port. The job is still
 * there and continues from its last completed round; rounds recorded before the kill are kept
 * as they were; dataset nodes and trainers find it again by themselves; every checkpoint's
 * bytes match its digest; the job finishes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Harness, freePort, kill, until } from './helpers.js';
import { spawnRole } from '../bin/demo.js';
import { CoordinatorStore } from '../src/store/index.js';
import { callUnary, makeClient, JobsClient } from '../src/wire/index.js';

let h: Harness;
afterEach(async () => h.close());

const roundsIn = (file: string): { round: number }[] => {
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { rounds: { round: number }[] }).rounds;
  } catch {
    return [];
  }
};

describe('durable coordinator', () => {
  it('survives SIGKILL mid-round: the job continues from its last completed round and finishes', async () => {
    h = new Harness();
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const out = path.join(h.dir, 'coord');
    const args = ['coordinator', '--listen', address, '--out', out, '--rounds', '6', '--cohort', '3', '--min-trainers', '3',
      '--secure-aggregation', 'false', '--hidden', '32', '--local-epochs', '2', '--validation-samples', '70',
      '--validation-seed', 'durable', '--live-timeout-ms', '3000', '--metrics-port', '-1', '--exit-when-done'];
    const first = spawnRole(args, h.logFile('coordinator-1'));
    h.defer(() => kill(first, 'SIGKILL'));
    await h.dataset(address, 'ds-a', ['--shards', '6', '--samples-per-shard', '64']);
    // A researcher's job beside the built-in one, on the fourth trainer's share.
    await until(async () => {
      const jobs = makeClient(JobsClient, address);
      try {
        await callUnary(jobs, 'SubmitJob', { spec: 'id: sub\ntask: exercise\nrounds: 4\ncohort: 1\nminTrainers: 1\nlocalEpochs: 1\nvalidationSamples: 70\ncohortWait: 0\nmodel: { family: mlp, hidden: [16] }\nsecureAggregation: { enabled: false }' }, { timeoutMs: 30_000 });
        return true;
      } catch {
        return false;
      } finally {
        jobs.close();
      }
    }, 'the job submitted');
    for (const id of ['t0', 't1', 't2', 't3']) await h.trainer(address, id);

    const history = path.join(out, 'history.json');
    await until(() => roundsIn(history).length >= 2, 'two completed rounds', 90_000);
    // Into the next round, then the kill.
    await new Promise((r) => setTimeout(r, 300));
    await kill(first, 'SIGKILL');
    const before = JSON.parse(fs.readFileSync(history, 'utf8')) as { rounds: { round: number }[] };
    // The store is what the job kept: history.json is copied from it after each round, so the
    // kill may fall between a round recorded and its copy.
    const mid = new CoordinatorStore(out);
    const kept = mid.rounds('job-1').length;
    const subBefore = mid.rounds('sub');
    mid.close();
    expect(kept).toBeGreaterThanOrEqual(2);
    expect([kept - 1, kept]).toContain(before.rounds.length);

    const second = spawnRole(args, h.logFile('coordinator-2'));
    h.defer(() => kill(second, 'SIGKILL'));
    const code = await new Promise<number | null>((r) => second.once('exit', (c) => r(c)));
    expect(code).toBe(0);

    const after = JSON.parse(fs.readFileSync(history, 'utf8')) as { rounds: { round: number }[] };
    expect(after.rounds.map((r) => r.round)).toEqual([1, 2, 3, 4, 5, 6]);
    // What was recorded before the kill is what the job kept.
    expect(after.rounds.slice(0, before.rounds.length)).toEqual(before.rounds);
    const log2 = fs.readFileSync(h.logFile('coordinator-2'), 'utf8');
    expect(log2).not.toContain('"level":"error"');
    expect(log2).toContain(`"msg":"job resumed","jobId":"job-1","afterRound":${kept}`);
    expect(fs.existsSync(path.join(out, 'jobs', 'sub', 'model', 'model-card.json'))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'))).toMatchObject({ state: 'DONE', rounds: 6 });
    expect(fs.existsSync(path.join(out, 'model', 'model.json'))).toBe(true);

    const store = new CoordinatorStore(out);
    try {
      expect(store.job('job-1')?.state).toBe('DONE');
      const rounds = store.rounds('job-1');
      expect(rounds.map((r) => r.round)).toEqual([1, 2, 3, 4, 5, 6]);
      for (const r of rounds) expect(store.readCheckpoint(r.checkpoint).params.length).toBeGreaterThan(0);
      // The submitted job came back too, kept what it had, and finished before the exit.
      expect(store.job('sub')?.state).toBe('DONE');
      const sub = store.rounds('sub');
      expect(sub.map((r) => r.round)).toEqual([1, 2, 3, 4]);
      expect(sub.slice(0, subBefore.length)).toEqual(subBefore);
      for (const r of sub) expect(store.readCheckpoint(r.checkpoint).params.length).toBeGreaterThan(0);
      // The trainers' records came through the restart: their tasks before it still count.
      const participants = [...rounds, ...sub].reduce((n, r) => n + (r.record as { participants: number }).participants, 0);
      const nodes = store.nodes<{ assigned: number; onTime: number }>();
      expect(nodes.map((n) => n.nodeId)).toEqual(['t0', 't1', 't2', 't3']);
      expect(nodes.reduce((n, x) => n + x.record.onTime, 0)).toBeGreaterThanOrEqual(participants);
      // A weight report after completed rounds (all local: no chain), in order, the last after all 10.
      const weights = store.weightsHistory();
      expect(new Set(weights.map((w) => w.mode))).toEqual(new Set(['local']));
      expect(weights.map((w) => w.rounds)).toEqual([...weights.map((w) => w.rounds)].sort((a, b) => a - b));
      expect(weights.at(-1)!.rounds).toBe(10);
      expect(weights.length).toBeGreaterThanOrEqual(8);
    } finally {
      store.close();
    }
  }, 240_000);

  it('shuts down cleanly on SIGTERM mid-round: exit 0, the job kept as running, and resumed on the next start', async () => {
    h = new Harness();
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const out = path.join(h.dir, 'coord');
    const args = ['coordinator', '--listen', address, '--out', out, '--rounds', '50', '--cohort', '2', '--min-trainers', '2',
      '--secure-aggregation', 'false', '--hidden', '16', '--local-epochs', '3', '--validation-samples', '70', '--metrics-port', '-1'];
    const first = spawnRole(args, h.logFile('coordinator-1'));
    h.defer(() => kill(first, 'SIGKILL'));
    await h.dataset(address, 'ds-a');
    for (const id of ['t0', 't1']) await h.trainer(address, id);
    await until(() => roundsIn(path.join(out, 'history.json')).length >= 1, 'a completed round', 60_000);
    const exited = new Promise<number | null>((r) => first.once('exit', (c) => r(c)));
    const t = Date.now();
    first.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - t).toBeLessThan(10_000);
    expect(fs.readFileSync(h.logFile('coordinator-1'), 'utf8')).toContain('"msg":"stopped"');
    const store = new CoordinatorStore(out);
    const done = store.rounds('job-1').length;
    expect(store.job('job-1')?.state).toBe('RUNNING');
    store.close();
    const second = spawnRole(args, h.logFile('coordinator-2'));
    h.defer(() => kill(second, 'SIGKILL'));
    await until(() => (fs.existsSync(h.logFile('coordinator-2')) ? fs.readFileSync(h.logFile('coordinator-2'), 'utf8') : '').includes(`"msg":"job resumed","jobId":"job-1","afterRound":${done}`), 'the job resumed', 30_000);
    const exited2 = new Promise<number | null>((r) => second.once('exit', (c) => r(c)));
    second.kill('SIGINT');
    expect(await exited2).toBe(0);
  }, 120_000);

  it('refuses a checkpoint whose bytes no longer match its digest, and a job id reused with another model', async () => {
    h = new Harness();
    const out = path.join(h.dir, 'coord');
    const c = await h.coordinator(['--out', out, '--rounds', '1', '--cohort', '3', '--min-trainers', '3', '--secure-aggregation', 'false', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--exit-when-done']);
    await h.dataset(c.address, 'ds-a');
    for (const id of ['t0', 't1', 't2']) await h.trainer(c.address, id);
    expect(await c.done).toBe('DONE');
    await c.close();
    const store = new CoordinatorStore(out);
    const [r] = store.rounds('job-1');
    store.close();
    // Another model under the same job id and --out.
    await expect(h.coordinator(['--out', out, '--hidden', '24'])).rejects.toThrow('job job-1: the store holds it with another task, model or strategy');
    // A corrupted checkpoint.
    const file = path.join(out, 'checkpoints', r!.checkpoint);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    fs.writeFileSync(file, bytes);
    await expect(h.coordinator(['--out', out, '--hidden', '16'])).rejects.toThrow(`checkpoint ${r!.checkpoint}: corrupt`);
  }, 120_000);
});
