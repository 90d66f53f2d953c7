/**
 * The process failure policy (bin/actiquest.ts), on a real coordinator process: a bug that
 * surfaces as an unhandled rejection or an uncaught exception is logged with its role and stack,
 * the coordinator closes as on SIGTERM (its store checkpointed and closed: no WAL left behind),
 * exits 70 for its supervisor, and starts again on the same --out.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Harness, actiquest, freePort } from './helpers.js';
import { CoordinatorStore } from '../src/store/index.js';

let h: Harness;
afterEach(async () => h.close());

const FIXTURE = pathToFileURL(path.resolve(import.meta.dirname, 'fixtures/plant-fault.mjs')).href;

describe('failure policy', () => {
  for (const [kind, what] of [['rejection', 'unhandled rejection'], ['exception', 'uncaught exception']] as const) {
    it(`an ${what} is logged, the store is closed cleanly, and the process exits 70`, async () => {
      h = new Harness();
      const out = path.join(h.dir, 'coord');
      const args = ['coordinator', '--listen', `127.0.0.1:${await freePort()}`, '--out', out, '--rounds', '3', '--cohort', '2', '--min-trainers', '2',
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
