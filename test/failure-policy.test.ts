/**
 * The process failure policy (bin/actiquest.ts), on a real coordinator process: a bug that
 * surfaces as an unhandled rejection or an uncaught exception is logged with its role and stack,
 * the coordinator closes as on SIGTERM (its store checkpointed and closed: no WAL left behind),
 * exits 70 for its supervisor, and starts again on the same --out.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { tsxLoaderUrl } from '../src/util/index.js';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Harness, actiquest, until } from './helpers.js';
import { CoordinatorStore } from '../src/store/index.js';

let h: Harness;
afterEach(async () => h.close());

const FIXTURE = pathToFileURL(path.resolve(import.meta.dirname, 'fixtures/plant-fault.mjs')).href;

describe('failure policy', () => {
  for (const [kind, what] of [['rejection', 'unhandled rejection'], ['exception', 'uncaught exception']] as const) {
    it(`an ${what} is logged, the store is closed cleanly, and the process exits 70`, async () => {
      h = new Harness();
      const out = path.join(h.dir, 'coord');
      const args = ['coordinator', '--listen', '127.0.0.1:0', '--out', out, '--rounds', '3', '--cohort', '2', '--min-trainers', '2',
        '--secure-aggregation', 'false', '--hidden', '8', '--validation-samples', '70', '--metrics-port', '-1'];
      const db = path.join(out, 'coordinator.db');
      const run = await actiquest(args, { NODE_OPTIONS: `--import=${FIXTURE}`, AQ_PLANT_FAULT: kind, AQ_PLANT_FAULT_AFTER: db, LOG_LEVEL: 'warn' });
      expect(run.code, run.stderr).toBe(70);
      const fatal = run.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, string>).find((l) => l.level === 'fatal');
      expect(fatal).toMatchObject({ role: 'coordinator', msg: `${what}: stopping cleanly for the supervisor to restart` });
      expect(fatal!.error).toContain('planted fault');
      // Closed, not killed: SQLite checkpointed its log into the database and removed it.
      expect(fs.existsSync(`${db}-wal`)).toBe(false);
      const store = new CoordinatorStore(out);
      try {
        expect(store.jobs()).toHaveLength(1);
      } finally {
        store.close();
      }
    }, 120_000);
  }
});

describe('startup errors', () => {
  it('a coordinator on a busy port says so in one line, exits 1 and leaves nothing behind', async () => {
    h = new Harness();
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    h.defer(() => new Promise<void>((r) => busy.close(() => r())));
    const port = (busy.address() as net.AddressInfo).port;
    const out = path.join(h.dir, 'coord');
    const run = await actiquest(['coordinator', '--listen', `127.0.0.1:${port}`, '--out', out, '--metrics-port', '-1']);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n').at(-1)).toBe(`actiquest coordinator: --listen: expected an address this process can listen on, got 127.0.0.1:${port}: in use by another process`);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(fs.existsSync(out)).toBe(false);
  }, 60_000);
});

describe('connection errors a person understands', () => {
  it('a trainer whose coordinator is unreachable says, after a few tries, what to check', async () => {
    h = new Harness();
    // Port 1 (tcpmux): nothing listens there, and no test can take it from under us.
    const address = '127.0.0.1:1';
    await h.trainer(address, 'lonely');
    const log = () => fs.readFileSync(h.logFile('trainer-lonely'), 'utf8');
    await until(() => log().includes('cannot register with the coordinator'), 'the hint', 30_000);
    const hint = log().split('\n').find((l) => l.includes('cannot register with the coordinator'))!;
    expect(JSON.parse(hint)).toMatchObject({ level: 'error', coordinator: address, failures: 5, hint: `nothing listens at ${address}: check the host and port (--coordinator), and that the coordinator runs` });
    expect(log()).not.toContain('Resolution note');
  }, 60_000);
});

/** Runs `cmd` until a line of its `stream` includes `text` (then stops it); resolves with that line. */
function lineOf(cmd: string[], stream: 'stdout' | 'stderr', text: string, timeoutMs = 45_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`no line with ${JSON.stringify(text)} in: ${out}`)); }, timeoutMs);
    child[stream].on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split(/\r?\n/).find((l) => l.includes(text));
      if (line && /\r?\n/.test(out.slice(out.indexOf(line)))) {
        clearTimeout(timer);
        child.kill('SIGTERM');
        resolve(line);
      }
    });
  });
}

describe('logs for a person', () => {
  it('are readable lines on a terminal and JSON in a pipe', async () => {
    h = new Harness();
    const address = '127.0.0.1:1';
    const args = [process.execPath, '--import', tsxLoaderUrl(), path.resolve(import.meta.dirname, '../bin/actiquest.ts'), 'trainer', '--coordinator', address, '--node-id', 'tty', '--backend', 'cpu', '--metrics-port', '-1',
      // A stated capacity: no self-benchmark first (about 30 s on the cpu backend, more on a busy machine).
      '--capacity', '1000'];
    // A pseudo-terminal (Python's pty module) for stderr, as an operator's shell gives.
    const line = await lineOf(['python3', '-c', 'import pty, sys; pty.spawn(sys.argv[1:])', ...args], 'stdout', 'register failed; retrying');
    expect(line).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} WARN  trainer\\.tty: register failed; retrying coordinator=${address.replace(/\./g, '\\.')} error=".*ECONNREFUSED.*" retryMs=250$`));
    const json = await lineOf(args, 'stderr', 'register failed; retrying');
    expect(JSON.parse(json)).toMatchObject({ level: 'warn', component: 'trainer.tty', coordinator: address, retryMs: 250 });
  }, 120_000);
});
