/**
 * A researcher's model never takes the coordinator down: each job's model lives in a process of
 * its own. On a coordinator process with `--max-model-memory-mib 400`, a job whose validation
 * gradient needs more fails with that reason; a job whose model process is killed from outside
 * (as the kernel's OOM killer would) fails with that reason; meanwhile the coordinator answers
 * and its built-in job trains to the end. A restart lists both failed jobs with their reasons and
 * starts no process for them (no crash loop). A coordinator runs at most --max-active-jobs jobs
 * (each holds a model process). The coordinator's own process never loads TF.js.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { Harness, grpcError, kill, until } from './helpers.js';
import { spawnRole, waitListening } from '../bin/demo.js';
import { callUnary, makeClient, JobsClient } from '../src/wire/index.js';
import { tsxLoaderUrl } from '../src/util/index.js';

let h: Harness;
afterEach(async () => h?.close());

const T = { timeoutMs: 30_000 };

/** The model processes of `pid`, by job id. */
function modelProcesses(pid: number): Map<string, number> {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' });
  } catch {
    return new Map(); // no children
  }
  const found = new Map<string, number>();
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+) .*model-process\.ts --job (\S+)/.exec(line);
    if (m) found.set(m[2]!, Number(m[1]));
  }
  return found;
}

describe('a job\'s model in its own process', () => {
  it('a model past --max-model-memory-mib and a killed model process fail their jobs with the reason, the coordinator and its other job go on, and a restart runs neither again', async () => {
    h = new Harness();
    const out = path.join(h.dir, 'out');
    const flags = ['coordinator', '--listen', '127.0.0.1:0', '--metrics-port', '-1', '--out', out, '--validation-seed', 'model-process',
      '--secure-aggregation', 'false', '--rounds', '3', '--cohort', '2', '--min-trainers', '2', '--hidden', '16', '--local-epochs', '1',
      '--validation-samples', '70', '--heartbeat-interval-ms', '200', '--live-timeout-ms', '1500', '--max-model-memory-mib', '400'];
    const start = async (name: string) => {
      const child = spawnRole(flags, h.logFile(name));
      h.defer(() => kill(child, 'SIGKILL'));
      const { grpc } = await waitListening(child);
      const jobs = makeClient(JobsClient, grpc);
      h.defer(() => jobs.close());
      const list = async () => new Map(((await callUnary(jobs, 'ListJobs', {}, T)).jobs).map((j) => [j.jobId, j]));
      return { child, grpc, jobs, list };
    };

    const first = await start('coordinator');
    const pid = first.child.pid!;
    // Fits every budget, builds in 200 MiB, but its validation gradient takes some 700 MiB.
    const wide = await callUnary(first.jobs, 'SubmitJob', { spec: 'id: wide\ntask: pose\nmodel: { family: cnn, widths: [64, 128, 256, 256] }\nvalidationSamples: 200\nrounds: 2\nsecureAggregation: { enabled: false }\n' }, T);
    expect(wide.state).toMatch(/PENDING|RUNNING/);
    await callUnary(first.jobs, 'SubmitJob', { spec: 'id: victim\ntask: pose\nvalidationSamples: 14\nrounds: 2\nsecureAggregation: { enabled: false }\n' }, T);

    await until(async () => (await first.list()).get('wide')?.state === 'FAILED', 'the wide job fails', 120_000);
    const failed = (await first.list()).get('wide')!;
    expect(failed.failure).toMatch(/^round 1: model process: expected at most 400 MiB resident \(--max-model-memory-mib\) while (evaluating the model|computing the validation gradient), got [\d,]+ MiB; it was stopped$/);

    // The victim's model process is killed from outside while its job waits for pose data.
    await until(() => modelProcesses(pid).has('victim'), 'the victim\'s model process');
    expect(modelProcesses(pid).has('wide')).toBe(false);
    process.kill(modelProcesses(pid).get('victim')!, 'SIGKILL');
    await until(async () => (await first.list()).get('victim')?.state === 'FAILED', 'the victim job fails');
    expect((await first.list()).get('victim')!.failure).toMatch(/^round 1: model process: the process exited \(SIGKILL\)(: .*)? \(while (idle|computing the validation gradient|evaluating the model)\)$/);

    // The built-in job trains to the end meanwhile, on its own model process.
    expect(modelProcesses(pid).has('job-1')).toBe(true);
    await h.dataset(first.grpc, 'ds-a');
    for (const t of ['t0', 't1']) await h.trainer(first.grpc, t);
    await until(async () => (await first.list()).get('job-1')?.state === 'DONE', 'the built-in job is done', 120_000);
    expect((await first.list()).get('job-1')!.roundsDone).toBe(3);
    await kill(first.child, 'SIGTERM');

    // A restart on the same store lists the failed jobs with their reasons and runs neither.
    const second = await start('coordinator-restarted');
    const again = await second.list();
    expect(again.get('wide')).toMatchObject({ state: 'FAILED', failure: failed.failure });
    expect(again.get('victim')?.state).toBe('FAILED');
    await new Promise((r) => setTimeout(r, 2000));
    expect([...modelProcesses(second.child.pid!).keys()].filter((j) => j !== 'job-1')).toEqual([]);
    expect((await second.list()).get('wide')!.state).toBe('FAILED');
  }, 300_000);

  it('a submission past --max-active-jobs is refused with RESOURCE_EXHAUSTED until a job ends', async () => {
    h = new Harness();
    const c = await h.coordinator(['--job', 'false', '--max-active-jobs', '1']);
    const jobs = makeClient(JobsClient, c.address);
    h.defer(() => jobs.close());
    const spec = (id: string) => ({ spec: `id: ${id}\ntask: exercise\nmodel: { family: mlp, hidden: [8] }\nvalidationSamples: 14\nsecureAggregation: { enabled: false }\n` });
    await callUnary(jobs, 'SubmitJob', spec('first'), T);
    expect(await grpcError(callUnary(jobs, 'SubmitJob', spec('second'), T))).toEqual({
      code: status.RESOURCE_EXHAUSTED,
      details: 'jobs: expected at most 1 pending or running at once (the coordinator\'s --max-active-jobs), got one more; submit again when one has ended',
    });
    await callUnary(jobs, 'CancelJob', { jobId: 'first' }, T);
    expect((await callUnary(jobs, 'SubmitJob', spec('second'), T)).jobId).toBe('second');
  }, 120_000);

  it('leaves TF.js out of the coordinator\'s process: its job is built and scored in the model process', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-modules-'));
    try {
      const printed = execFileSync(process.execPath, ['--import', tsxLoaderUrl(), path.join(import.meta.dirname, 'fixtures/coordinator-modules.ts'), out], { encoding: 'utf8', timeout: 60_000 });
      const seen = JSON.parse(printed.trim().split('\n').at(-1)!) as { scored: string; tfModules: number; heapMiB: number };
      expect(seen.scored).toMatch(/^job job-1: exercise, [\d,]+ parameters, .*initial val acc \d+\.\d%$/);
      expect(seen.tfModules).toBe(0);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
