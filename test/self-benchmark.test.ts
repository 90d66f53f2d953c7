/**
 * A trainer started without --capacity measures what it trains at: the exercise MLP and the
 * pose CNN on its backend, with its real training step; it says so in its start line and status
 * page, and advertises the pose CNN's rate to the coordinator, which registers it with it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { Harness, until } from './helpers.js';

let h: Harness;
afterEach(async () => h.close());

const events = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('trainer self-benchmark', () => {
  it('measures the default models at start, prints the rates, and advertises the pose CNN\'s as its capacity', async () => {
    h = new Harness();
    const c = await h.coordinator(['--rounds', '1', '--log-level', 'info']);
    const t = await h.trainer(c.address, 'measured', ['--capacity', '0', '--log-level', 'info']);
    const started = events(h.logFile('trainer-measured')).find((e) => e.msg === 'started')!;
    const rates = started.samplesPerSecond as Record<string, number>;
    expect(rates.exercise).toBeGreaterThan(0);
    expect(rates.pose).toBeGreaterThan(0);
    // The MLP over keypoints trains many times faster than the CNN over images.
    expect(rates.exercise).toBeGreaterThan(3 * rates.pose!);
    expect(started.capacity).toBe(rates.pose);
    await until(() => events(h.logFile('coordinator')).some((e) => e.msg === 'trainer registered' && e.nodeId === 'measured'), 'the registration', 10_000);
    const registered = events(h.logFile('coordinator')).find((e) => e.msg === 'trainer registered' && e.nodeId === 'measured')!;
    expect(Math.abs((registered.capacity as number) - rates.pose!)).toBeLessThanOrEqual(1);
    const page = await (await fetch(`http://${t.metricsAddress}/status.json`)).json() as { facts: [string, string][] };
    expect(page.facts.find(([k]) => k === 'speed')?.[1]).toMatch(/^exercise mlp \d+\/s, pose cnn \d+\/s$/);
  }, 60_000);
});
