/**
 * The main job as users run it: `actiquest demo` (npm start) spawns a coordinator, 2 dataset
 * nodes and 10 trainers as separate processes, trains with secure aggregation in two groups of
 * 5, and must reach the 85% validation accuracy target.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tsxLoaderUrl } from '../src/util/tsx.js';

describe('npm start', () => {
  it('trains a federation of separate processes with secure aggregation to at least 85% validation accuracy', async () => {
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
      expect(summary.finalValAccuracy).toBeGreaterThanOrEqual(0.85);
      // Secure aggregation in two groups of 5 in every round.
      expect(history.rounds.every((r) => r.groups >= 1)).toBe(true);
      expect(history.rounds.filter((r) => r.groups === 2).length).toBeGreaterThanOrEqual(8);
      expect(stdout).toMatch(/secure aggregation in 2 groups of 5\+5/);
      expect(stdout).toMatch(/final validation accuracy \d+\.\d% after 10 rounds/);
      expect(fs.existsSync(path.join(out, 'model', 'model.json'))).toBe(true);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);
});
