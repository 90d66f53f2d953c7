/**
 * A coordinator whose stderr nobody reads: 12,000 logged calls (some 1.8 MB of log lines) are
 * all answered, at most 1 MiB of lines waits in its memory (the rest are dropped and counted),
 * and once the reader comes back one line says how many were dropped.
 *
 * It runs with tsx's cache off, so that every module it loads is compiled by esbuild's service:
 * a child process that inherits its stderr and, as libuv starts it, puts that descriptor's open
 * file in blocking mode. That is how a role first run after a change (or on a fresh machine)
 * found its output: without the sink setting the descriptor back to non-blocking, the
 * coordinator stops inside write(2) once the socket's buffer is full.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Harness, freePort, kill } from './helpers.js';
import { callUnary, makeClient, CoordinatorClient } from '../src/wire/index.js';
import { tsxLoaderUrl } from '../src/util/index.js';

let h: Harness;
afterEach(async () => h.close());

const CALLS = 12_000;

describe('output nobody reads', () => {
  it('keeps at most 1 MiB of log lines waiting, answers every call, and says how many lines it dropped', async () => {
    h = new Harness();
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', tsxLoaderUrl(), path.resolve(import.meta.dirname, '../bin/actiquest.ts'), 'coordinator', '--listen', `127.0.0.1:${port}`,
      '--metrics-port', '-1', '--out', path.join(h.dir, 'out'), '--job', 'false'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TSX_DISABLE_CACHE: '1' } });
    h.defer(() => kill(child, 'SIGKILL'));
    // Nothing reads its stdout or stderr until the calls are done.
    child.stdout.pause();
    child.stderr.pause();
    const c = makeClient(CoordinatorClient, `127.0.0.1:${port}`);
    h.defer(() => c.close());
    for (let up = false; !up;) up = await callUnary(c, 'GetStatus', {}, { timeoutMs: 1000 }).then(() => true, async () => { await new Promise((r) => setTimeout(r, 200)); return false; });

    let answered = 0;
    let stderr = '';
    const read = () => {
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.stderr.resume();
    };
    try {
      await Promise.all(Array.from({ length: 20 }, async (_, w) => {
        for (let i = w; i < CALLS; i += 20) {
          await callUnary(c, 'RegisterTrainer', { nodeId: `t-${i % 50}`, capacity: { samplesPerSecond: 10, backend: 'wasm', device: 'x' } }, { timeoutMs: 10_000 });
          answered++;
        }
      }));
    } catch (err) {
      // What the coordinator said meanwhile (its stall watchdog, say) goes with the failure.
      read();
      await new Promise((r) => setTimeout(r, 3000));
      throw new Error(`${(err as Error).message} after ${answered} calls; the coordinator's stderr ends:\n${stderr.split('\n').filter((l) => !l.includes('registered')).slice(-20).join('\n')}`);
    }
    expect(answered).toBe(CALLS);
    read();
    const dropped = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no dropped-lines note in ${stderr.length} bytes of stderr`)), 20_000);
      const look = setInterval(() => {
        const note = stderr.split('\n').find((l) => l.includes('"lines dropped: the reader of this output fell behind"'));
        if (!note) return;
        clearInterval(look);
        clearTimeout(timer);
        resolve((JSON.parse(note) as { dropped: number }).dropped);
      }, 100);
    });
    const lines = stderr.split('\n').filter((l) => l.includes('re-registered')).length;
    expect(dropped).toBeGreaterThan(0);
    // What waited was at most 1 MiB, plus what the kernel's socket buffers held.
    expect(stderr.length).toBeLessThan(2 ** 20 + 512 * 1024);
    expect(lines + dropped).toBeGreaterThanOrEqual(CALLS - 50);
  }, 120_000);
});
