import { describe, expect, it } from 'vitest';
import { NodeRegistry } from './node-registry.js';

describe('NodeRegistry operational signals', () => {
  it('counts an outage from the live timeout after the last heartbeat to the next one', () => {
    let now = 1_000;
    const reg = new NodeRegistry(10_000, () => now);
    reg.register('a', 100, 'wasm', 'cpu');
    now += 50_000;
    reg.touch('a'); // down from 11,000 to 51,000: 40 s of 50
    expect(reg.uptime('a')).toBeCloseTo(1 - 40 / 50, 9);
    now += 50_000;
    reg.touch('a'); // down 40 s more: 80 of 100
    now += 5_000;
    expect(reg.uptime('a')).toBeCloseTo(1 - 80 / 105, 9);
    // An open outage counts before the next heartbeat.
    now += 30_000;
    expect(reg.uptime('a')).toBeCloseTo(1 - (80 + 25) / 135, 9);
    // Steady heartbeats within the timeout cost nothing.
    const b = new NodeRegistry(10_000, () => now);
    b.register('b', 100, 'wasm', 'cpu');
    for (let i = 0; i < 10; i++) { now += 9_000; b.touch('b'); }
    expect(b.uptime('b')).toBe(1);
  });

  it('measures throughput against the median of observed trainers, capped at 1', () => {
    const reg = new NodeRegistry(10_000);
    for (const id of ['a', 'b', 'c', 'd']) reg.register(id, 100, 'wasm', 'cpu');
    expect(reg.relativeThroughput('a')).toBe(1);
    reg.recordTask('a', true, 50);
    reg.recordTask('b', true, 100);
    reg.recordTask('c', true, 400);
    expect(reg.relativeThroughput('a')).toBeCloseTo(0.5, 9);
    expect(reg.relativeThroughput('c')).toBe(1);
    expect(reg.relativeThroughput('d')).toBe(0);
  });
});
