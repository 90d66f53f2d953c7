/**
 * The coordinator's limits that depend on each other or on the machine, as its flags resolve
 * them (docs/operations.md, "Limits on what a peer may send").
 */
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadCoordinatorConfig, resolveMaskThreads } from '../coordinator/config.js';

describe('coordinator limits', () => {
  it('let in no more uploads than the stream guard lets incomplete messages hold: --max-upload-mib at most --max-buffered-mib', () => {
    expect(loadCoordinatorConfig([], {}).limits).toMatchObject({ uploadBytes: 256 << 20, bufferedBytes: 256 << 20 });
    expect(() => loadCoordinatorConfig(['--max-upload-mib', '512'], {}))
      .toThrow('--max-upload-mib: expected at most --max-buffered-mib (256): the uploads let in may all be sending at once, got 512');
    expect(loadCoordinatorConfig(['--max-upload-mib', '512', '--max-buffered-mib', '512'], {}).limits.uploadBytes).toBe(512 << 20);
  });

  it('start a mask thread a core, at most four unless told: each holds about 30 MiB', () => {
    expect([1, 2, 4, 16, 128].map((cores) => resolveMaskThreads(0, cores))).toEqual([1, 2, 4, 4, 4]);
    expect(resolveMaskThreads(12, 2)).toBe(12);
    expect(loadCoordinatorConfig([], {}).limits.maskThreads).toBe(Math.min(os.availableParallelism(), 4));
    expect(loadCoordinatorConfig(['--mask-threads', '12'], {}).limits.maskThreads).toBe(12);
    expect(() => loadCoordinatorConfig(['--mask-threads', '2.5'], {})).toThrow('--mask-threads: expected a whole number of threads (0: the default), got 2.5');
  });

  it("put the data plane on --listen's host at a free port unless told: a host:port, or off", () => {
    expect(loadCoordinatorConfig(['--listen', '0.0.0.0:50051'], {}).dataListen).toBe('0.0.0.0:0');
    expect(loadCoordinatorConfig(['--data-listen', '0.0.0.0:50052'], {}).dataListen).toBe('0.0.0.0:50052');
    expect(loadCoordinatorConfig(['--data-listen', 'off'], {}).dataListen).toBeNull();
    expect(loadCoordinatorConfig([], { AQ_DATA_LISTEN: 'off' }).dataListen).toBeNull();
    for (const bad of ['50052', 'host:port', 'on']) {
      expect(() => loadCoordinatorConfig(['--data-listen', bad], {})).toThrow(`--data-listen: expected host:port, auto or off, got "${bad}"`);
    }
  });
});
