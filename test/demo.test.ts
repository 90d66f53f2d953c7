/**
 * The main job as users run it: `actiquest demo` (npm start) spawns a coordinator, 2 dataset
 * nodes and 10 trainers as separate processes, trains with secure aggregation in two groups of
 * 5, and must learn the task: chance is 1/7, and runs end between about 0.8 and 0.93 (draws, dropout
 * and the validation seed are new each run), so the bar is 0.75.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tsxLoaderUrl } from '../src/util/index.js';
import { kill } from './helpers.js';
import { spawnRole, waitListening } from '../bin/demo.js';
import { callUnary, makeClient, CoordinatorClient } from '../src/wire/index.js';

describe('npm start', () => {
  it('trains a federation of separate processes with secure aggregation to at least 75% validation accuracy', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'actiquest-demo-'));
    try {
      const child = spawn(process.execPath, ['--import', tsxLoaderUrl(), 'bin/actiquest.ts', 'demo', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stdout += d));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code, stdout).toBe(0);
      const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as { finalValAccuracy: number; rounds: number };
      const history = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as { rounds: { groups: number; participants: number }[] };
      expect(summary.rounds).toBe(10);
      // The demo's output (each round's trainers, groups and accuracy) says what a miss was.
      expect(summary.finalValAccuracy, stdout).toBeGreaterThanOrEqual(0.75);
      // Secure aggregation in two groups of 5 in every round.
      expect(history.rounds.every((r) => r.groups >= 1), stdout).toBe(true);
      expect(history.rounds.filter((r) => r.groups === 2).length, stdout).toBeGreaterThanOrEqual(8);
      expect(stdout).toMatch(/secure aggregation in 2 groups of 5\+5/);
      expect(stdout).toMatch(/final validation accuracy \d+\.\d% after 10 rounds/);
      expect(fs.existsSync(path.join(out, 'model', 'model.json'))).toBe(true);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);

  it('a role the demo spawned has its stderr drained after it listens: its logs keep reaching its log file', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'actiquest-spawn-'));
    const child = spawnRole(['coordinator', '--listen', '127.0.0.1:0', '--metrics-port', '-1', '--out', path.join(out, 'out'), '--job', 'false', '--log-level', 'info'], path.join(out, 'coordinator.log'));
    try {
      const { grpc } = await waitListening(child);
      const client = makeClient(CoordinatorClient, grpc);
      // Each registration logs a line of about 130 bytes: 800 of them are about 100 KB, past the
      // 64 KB a pipe holds. Before, the file stopped at the 'listening' line: waitListening's
      // readline, once closed, had paused the stream.
      for (let i = 0; i < 800; i++) {
        await callUnary(client, 'RegisterTrainer', { nodeId: `trainer-${i}`, capacity: { samplesPerSecond: 1, backend: 'wasm', device: 'cpu' }, version: 'test', identityKey: Buffer.alloc(0) }, { timeoutMs: 5000 });
      }
      client.close();
      await new Promise((r) => setTimeout(r, 200));
      expect(fs.statSync(path.join(out, 'coordinator.log')).size).toBeGreaterThan(100_000);
    } finally {
      await kill(child, 'SIGTERM');
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
