/**
 * What Prometheus scrapes from each role after a job: `promtool check metrics` (Debian's
 * prometheus package) finds nothing to say, process and Node.js metrics carry their standard
 * names, and no series has a label named `job` (Prometheus sets that one itself).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { Harness } from './helpers.js';

let h: Harness;
afterEach(async () => h?.close());

/** promtool's path; under CI a missing one is an error (.ci/run installs it). */
function promtool(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim() || null;
  } catch {
    if (process.env.CI === 'true') throw new Error('CI=true but promtool is missing (apt-get install prometheus)');
    return null;
  }
}

const run = promtool() ? describe : describe.skip;

run('metrics', () => {
  it('pass promtool check metrics on every role, under their standard names, with job_id and never job', async () => {
    h = new Harness();
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '2', '--min-trainers', '2', '--hidden', '8',
      '--local-epochs', '1', '--validation-samples', '70']);
    const d = await h.dataset(c.address, 'ds-a');
    const trainers = [await h.trainer(c.address, 't0'), await h.trainer(c.address, 't1')];
    expect(await c.done).toBe('DONE');
    for (const [role, address] of [['coordinator', c.metricsAddress], ['dataset', d.metricsAddress], ['trainer', trainers[0]!.metricsAddress]] as const) {
      const text = await (await fetch(`http://${address!}/metrics`)).text();
      const check = spawnSync(promtool()!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(`${check.stdout}${check.stderr}`, role).toBe('');
      expect(check.status, role).toBe(0);
      for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
        expect(text, `${role}: ${name}`).toMatch(new RegExp(`^${name}\\{`, 'm'));
      }
      expect(text, role).not.toMatch(/actiquest_process_/);
      expect(text, role).not.toMatch(/[{,]job="/);
    }
    const coord = await (await fetch(`http://${c.metricsAddress!}/metrics`)).text();
    expect(coord).toMatch(/^actiquest_rounds_total\{job_id="job-1",result="completed",role="coordinator"\} 1$/m);
    // The job has ended: its gauges are gone.
    expect(coord).not.toMatch(/^actiquest_round\{/m);
  }, 120_000);
});
