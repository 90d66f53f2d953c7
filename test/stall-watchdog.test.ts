/**
 * The stall watchdog, in a real process (test/fixtures/stall.ts): a loop stuck in JavaScript is
 * reported with the stack it is stuck in, a loop blocked in a system call with that call, and
 * each end of a stall with how long it lasted.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { tsxLoaderUrl } from '../src/util/index.js';

describe('stall watchdog', () => {
  it('says where a stuck event loop is: the JavaScript stack, or the system call it waits in', async () => {
    const child = spawn(process.execPath, ['--import', tsxLoaderUrl(), path.join(import.meta.dirname, 'fixtures/stall.ts')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code, stderr).toBe(0);
    const lines = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; stalledMs: number; stack?: string[]; syscall?: string; wchan?: string });
    expect(lines.map((l) => l.msg)).toEqual(['event loop stalled in JavaScript', 'event loop running again', 'event loop stalled, not in JavaScript', 'event loop running again']);
    expect(lines[0]!.stack![0]).toMatch(/^spinForever file:\/\/.*\/test\/fixtures\/stall\.ts:\d+:\d+$/);
    expect(lines[1]!.stalledMs).toBeGreaterThanOrEqual(2500);
    expect(lines[2]!.syscall).toMatch(/^\d+$/);
    expect(lines[3]!.stalledMs).toBeGreaterThanOrEqual(2500);
  }, 30_000);
});
