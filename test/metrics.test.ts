/**
 * What Prometheus scrapes from each role after a job: `promtool check metrics` (Debian's
 * prometheus package) finds nothing to say, process and Node.js metrics carry their standard
 * names, and no series has a label named `job` (Prometheus sets that one itself). The Grafana
 * dashboards in dashboards/ ask only for metrics the roles export, in PromQL promtool parses.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Harness } from './helpers.js';

const DASHBOARDS = path.resolve(import.meta.dirname, '../dashboards');

/** Every PromQL expression of a Grafana dashboard (panel targets and query variables), Grafana's variables filled in. */
function expressionsOf(file: string): string[] {
  const d = JSON.parse(fs.readFileSync(file, 'utf8')) as { panels: { targets: { expr: string }[] }[]; templating: { list: { query?: unknown }[] } };
  const exprs = [...d.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...d.templating.list.map((v) => (v.query as { query?: string } | undefined)?.query).filter((q): q is string => typeof q === 'string')];
  // label_values(metric{...}, label) is Grafana's, not PromQL: its first argument is.
  return exprs.map((e) => e.replace(/^label_values\((.*), \w+\)$/, '$1').replaceAll('$instance', '.*'));
}

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
  it('pass promtool check metrics on every role, under their standard names, with job_id and never job; the dashboards query only them; the phase a round is in is told as it runs', async () => {
    h = new Harness();
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '2', '--min-trainers', '2', '--hidden', '8',
      '--local-epochs', '1', '--validation-samples', '70']);
    const d = await h.dataset(c.address, 'ds-a');
    // The phase under way, one at 1 and the others 0: waiting for trainers, then collecting.
    const phaseNow = async (want: string) => {
      for (let i = 0; i < 600; i++) {
        const ones = [...(await (await fetch(`http://${c.metricsAddress!}/metrics`)).text()).matchAll(/^actiquest_round_phase\{(?=[^}]*job_id="job-1")[^}]*phase="(\w+)"[^}]*\} (\S+)$/gm)];
        const on = ones.filter((m) => m[2] === '1').map((m) => m[1]);
        if (on.length === 1 && on[0] === want) return ones.length;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`the round was never seen in ${want}`);
    };
    expect(await phaseNow('waiting')).toBe(8);
    const trainers = [await h.trainer(c.address, 't0'), await h.trainer(c.address, 't1')];
    expect(await phaseNow('collect')).toBe(8);
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
    // The dashboards ask only for metrics some role exports, in PromQL promtool parses.
    const exported = (await Promise.all([c.metricsAddress, d.metricsAddress, trainers[0]!.metricsAddress].map(async (a) => (await fetch(`http://${a!}/metrics`)).text()))).join('\n');
    const typed = new Set([...exported.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    for (const file of fs.readdirSync(DASHBOARDS).filter((f) => f.endsWith('.json'))) {
      const exprs = expressionsOf(path.join(DASHBOARDS, file));
      expect(exprs.length, file).toBeGreaterThan(5);
      for (const e of exprs) {
        for (const [name] of e.matchAll(/\b(?:actiquest|process|nodejs)_[a-z0-9_]+/g)) {
          const base = name.replace(/_(bucket|sum|count)$/, '');
          expect(typed.has(name) || typed.has(base), `${file}: ${name} in ${e}`).toBe(true);
        }
      }
      const rules = path.join(h.dir, `${file}.rules.yml`);
      fs.writeFileSync(rules, `groups:\n  - name: dashboard\n    rules:\n${exprs.map((e, i) => `      - record: dashboard:expr${i}\n        expr: ${JSON.stringify(e)}\n`).join('')}`);
      const parsed = spawnSync(promtool()!, ['check', 'rules', rules], { encoding: 'utf8' });
      expect(parsed.status, `${file}: ${parsed.stdout}${parsed.stderr}`).toBe(0);
    }
    const coord = await (await fetch(`http://${c.metricsAddress!}/metrics`)).text();
    expect(coord).toMatch(/^actiquest_rounds_total\{job_id="job-1",result="completed",role="coordinator"\} 1$/m);
    // Counted at the scrape: both trainers heartbeat.
    expect(coord).toMatch(/^actiquest_live_trainers\{role="coordinator"\} 2$/m);
    // Where the round's time went, phase by phase: once each; all but the checkpoint's in the
    // round's record too (the record is what the checkpoint stores).
    const record = c.job.history[0]!;
    for (const phase of ['gradient', 'plan', 'collect', 'evaluate', 'aggregate', 'validate', 'checkpoint']) {
      expect(coord).toMatch(new RegExp(`^actiquest_round_phase_seconds_count\\{(?=[^}]*job_id="job-1")[^}]*phase="${phase}"[^}]*\\} 1$`, 'm'));
    }
    const p = record.phaseSeconds!;
    expect(Object.keys(p)).toEqual(['gradient', 'plan', 'collect', 'evaluate', 'aggregate', 'validate']);
    for (const v of Object.values(p)) expect(v).toBeGreaterThanOrEqual(0);
    // Training happens in collect: it is most of the round.
    expect(p.collect).toBeGreaterThan(p.plan + p.aggregate);
    expect(p.plan + p.collect + p.evaluate + p.aggregate + p.validate).toBeLessThanOrEqual(record.durationSeconds + 0.5);
    // The job has ended: its gauges are gone.
    expect(coord).not.toMatch(/^actiquest_round\{/m);
    expect(coord).not.toMatch(/^actiquest_round_phase\{/m);
  }, 120_000);
});
