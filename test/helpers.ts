/**
 * Test harness: real roles on 127.0.0.1:0 with temp-dir storage, configured through the same
 * config loaders the CLI uses, and everything closed after each test. Every role logs to a file
 * in the test's folder (`--log-file`); the files are printed only when the test fails.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tsxLoaderUrl } from '../src/util/index.js';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { onTestFailed } from 'vitest';
import { loadCoordinatorConfig } from '../coordinator/config.js';
import { startCoordinator, type Coordinator, type CoordinatorHooks } from '../coordinator/main.js';
import { loadDatasetConfig } from '../dataset-node/config.js';
import { startDatasetNode, type DatasetNode } from '../dataset-node/main.js';
import { loadTrainerConfig } from '../trainer-node/config.js';
import { startTrainer, type TrainerHooks, type TrainerNode } from '../trainer-node/main.js';
import { spawnRole } from '../bin/demo.js';
import { selectBackend } from '../src/model/index.js';

/** Things to close after a test, last opened first. */
const PLANTED_TRAINER = fileURLToPath(new URL('./fixtures/planted-trainer.ts', import.meta.url));

export class Harness {
  private readonly closers: (() => unknown)[] = [];
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'actiquest-test-'));
  readonly progress: string[] = [];
  /** The roles' logs, read when the folder is removed (a failed test prints them). */
  private logs: string | null = null;

  constructor() {
    onTestFailed(() => {
      process.stderr.write(`\n--- role logs of the failed test (${this.dir}) ---\n${this.logs ?? this.readLogs()}\n--- progress ---\n${this.progress.join('\n')}\n`);
    });
  }

  /** A log file for a role in this test's folder. */
  logFile(name: string): string {
    return path.join(this.dir, 'logs', `${name}.log`);
  }

  private readLogs(): string {
    const dir = path.join(this.dir, 'logs');
    if (!fs.existsSync(dir)) return '(none)';
    return fs.readdirSync(dir).sort().map((f) => `== ${f}\n${fs.readFileSync(path.join(dir, f), 'utf8')}`).join('\n');
  }

  defer(fn: () => unknown): void {
    this.closers.push(fn);
  }

  async close(): Promise<void> {
    for (const fn of this.closers.splice(0).reverse()) await fn();
    this.logs = this.readLogs();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async coordinator(flags: string[], hooks: CoordinatorHooks = {}): Promise<Coordinator> {
    await selectBackend('wasm');
    const config = loadCoordinatorConfig([
      '--listen', '127.0.0.1:0', '--metrics-port', '0', '--out', path.join(this.dir, 'out'), '--log-level', 'warn', '--log-file', this.logFile('coordinator'),
      '--validation-seed', 'test-validation', '--model-backend', 'wasm', ...flags,
    ], {});
    const c = await startCoordinator(config, { progress: (l) => this.progress.push(l), ...hooks });
    this.defer(() => c.close());
    return c;
  }

  async dataset(coordinator: string, seed: string, flags: string[] = []): Promise<DatasetNode> {
    const node = await startDatasetNode(loadDatasetConfig([
      '--listen', '127.0.0.1:0', '--coordinator', coordinator, '--seed', seed, '--shards', '6', '--samples-per-shard', '32',
      '--data-dir', path.join(this.dir, 'datasets'), '--metrics-port', '0', '--log-level', 'warn', '--log-file', this.logFile(`dataset-${seed}`), ...flags,
    ], {}));
    this.defer(() => node.close());
    return node;
  }

  async trainer(coordinator: string, nodeId: string, flags: string[] = [], hooks: TrainerHooks = {}): Promise<TrainerNode> {
    const t = await startTrainer(loadTrainerConfig([
      // A set capacity: no self-benchmark at start (test/self-benchmark.test.ts runs one). One
      // training thread: a test's trainers share the machine (test/train-threads.test.ts runs more).
      '--coordinator', coordinator, '--node-id', nodeId, '--backend', 'wasm', '--metrics-port', '0', '--log-level', 'warn', '--log-file', this.logFile(`trainer-${nodeId}`), '--wait-ms', '2000', '--capacity', '1000', '--threads', '1', ...flags,
    ], {}), hooks);
    this.defer(() => t.close());
    return t;
  }

  /** A trainer as a separate process (`actiquest trainer`). */
  trainerProcess(coordinator: string, nodeId: string, flags: string[] = []): ChildProcess {
    const child = spawnRole(['trainer', '--coordinator', coordinator, '--node-id', nodeId, '--backend', 'wasm',
      '--metrics-port', '-1', '--wait-ms', '2000', '--capacity', '1000', '--threads', '1', ...flags], this.logFile(`${nodeId}-process-${Date.now()}`));
    this.defer(() => kill(child, 'SIGTERM'));
    return child;
  }

  /** A trainer process with a planted misbehaviour (test/fixtures/planted-trainer.ts); it logs to `logFile(nodeId)`. */
  plantedTrainer(coordinator: string, nodeId: string, plant: 'reveals' | 'weight' | 'range' | 'scale', flags: string[] = []): ChildProcess {
    const child = spawnRole([plant, '--coordinator', coordinator, '--node-id', nodeId, '--backend', 'wasm', '--metrics-port', '-1', '--wait-ms', '2000', '--threads', '1',
      '--log-file', this.logFile(nodeId), ...flags], this.logFile(`${nodeId}-stderr`), { script: PLANTED_TRAINER });
    this.defer(() => kill(child, 'SIGTERM'));
    return child;
  }
}

/** Sends `signal` and waits for the process to exit. */
export function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/**
 * Polls `cond` every 50 ms until it holds; fails with `what` after `timeoutMs`, and with what
 * `state()` says of the state it saw instead, so that a CI failure explains itself.
 */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000, state?: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${state ? `; saw ${state()}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Fetches a Prometheus endpoint and returns the value of `metric` whose labels include `labels`. */
export async function metricValue(address: string, metric: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== metric) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  throw new Error(`metric ${metric}${JSON.stringify(labels)} not found at ${address}`);
}

/** The gRPC status code and message of a rejected promise. */
export async function grpcError(p: Promise<unknown>): Promise<{ code: grpc.status; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error('expected the call to fail');
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Runs `actiquest <args>` as a child process (with `env` added) to its exit. */
export function actiquest(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', tsxLoaderUrl(), path.join(ROOT, 'bin/actiquest.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** A loopback port free now (for a process that must be told its port before it starts). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const HealthClient = grpc.makeClientConstructor(healthService, 'Health');

/** What `grpc.health.v1.Health/Check` says of `service` ('' : the whole server) at `address`. */
export async function healthOf(address: string, service = ''): Promise<string> {
  const client = new HealthClient(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: { status: string }) => void): void;
  };
  try {
    return await new Promise<string>((resolve, reject) => client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))));
  } finally {
    client.close();
  }
}
