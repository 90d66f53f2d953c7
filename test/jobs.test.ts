/**
 * Researchers' jobs end to end: specs submitted with the `actiquest` CLI (a child process per
 * command) to a coordinator that runs no built-in job; two jobs share four trainers by priority,
 * never in two jobs' rounds at once; the finished model downloads as TF.js files whose digests
 * its model card lists; a job is cancelled; and a restarted coordinator still lists every job and
 * resumes the unfinished one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Harness, actiquest, metricValue, until } from './helpers.js';
import * as tf from '@tensorflow/tfjs';
import { loadModelFiles, runOnnx } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';
import { sha256 } from '../src/wire/index.js';
import type { Coordinator } from '../coordinator/main.js';

let h: Harness;
afterEach(async () => h.close());

const common = `task: exercise
model: { family: mlp, hidden: [24] }
localEpochs: 1
batchSize: 32
validationSamples: 70
cohortWait: 0
secureAggregation: { enabled: false }
`;

function specFile(name: string, text: string): string {
  const file = path.join(h.dir, `${name}.yaml`);
  fs.writeFileSync(file, text);
  return file;
}

describe('researchers\' jobs', () => {
  it('two submitted jobs share the trainers by priority, the model downloads with its card, a job is cancelled, and a restart keeps them all', async () => {
    h = new Harness();
    const coordFlags = ['--job', 'false'];
    let c: Coordinator = await h.coordinator(coordFlags);
    const addr = ['--coordinator', c.address];

    const alpha = await actiquest(['submit', specFile('alpha', `id: alpha\n${common}rounds: 2\ncohort: 4\nminTrainers: 3\npriority: 3\ndescription: squat or lunge\n`), ...addr]);
    expect(alpha.stderr).toBe('');
    expect(alpha.stdout).toMatch(/^submitted job alpha \(exercise\): [\d,]+ parameters, [\d.,]+ (M|G)?FLOPs a sample, 2 rounds, priority 3; (PENDING|RUNNING)\n/);
    const beta = await actiquest(['submit', specFile('beta', `id: beta\n${common}rounds: 2\ncohort: 4\nminTrainers: 1\npriority: 1\n`), ...addr]);
    expect(beta.code).toBe(0);
    // A pose job of high priority with no pose dataset node: it holds no share while it waits.
    const idle = await actiquest(['submit', specFile('idle', 'id: idle\ntask: pose\nrounds: 1\npriority: 50\nvalidationSamples: 14\nsecureAggregation: { enabled: false }\n'), ...addr]);
    expect(idle.code).toBe(0);

    // While both run, no trainer is ever in both jobs' rounds.
    const overlaps: string[] = [];
    const sampler = setInterval(() => {
      const a = new Set(c.jobs.get('alpha').runner!.busyTrainers());
      for (const id of c.jobs.get('beta').runner!.busyTrainers()) if (a.has(id)) overlaps.push(id);
    }, 20);
    h.defer(() => clearInterval(sampler));
    await h.dataset(c.address, 'ds-a');
    const trainers = [];
    for (let i = 0; i < 4; i++) trainers.push(await h.trainer(c.address, `t${i}`));
    await Promise.all([c.jobs.get('alpha').done, c.jobs.get('beta').done]);
    clearInterval(sampler);
    expect(c.jobs.stateOf(c.jobs.get('idle'))).toBe('RUNNING');
    expect(overlaps).toEqual([]);
    const hist = (id: string) => c.jobs.historyOf(c.jobs.get(id));
    expect(hist('alpha').map((r) => r.round)).toEqual([1, 2]);
    expect(hist('beta').map((r) => r.round)).toEqual([1, 2]);
    // Priority 3 against 1 (same task weight) among 4 trainers: alpha may hold 3, beta 1.
    expect(hist('alpha')[0]!.participants).toBe(3);
    expect(hist('beta')[0]!.participants).toBe(1);

    // Prometheus sees each job apart.
    const metric = (name: string, labels: Record<string, string>) => metricValue(c.metricsAddress!, name, labels);
    expect(await metric('actiquest_rounds_total', { job_id: 'alpha', result: 'completed' })).toBe(2);
    expect(await metric('actiquest_rounds_total', { job_id: 'beta', result: 'completed' })).toBe(2);
    expect(await metric('actiquest_updates_accepted_total', { job_id: 'alpha' })).toBe(hist('alpha').reduce((n, r) => n + r.participants, 0));
    expect(await metric('actiquest_updates_accepted_total', { job_id: 'beta' })).toBe(2);
    // A job's gauges go when it ends; a running job's stay.
    await expect(metric('actiquest_validation_accuracy_ratio', { job_id: 'alpha' })).rejects.toThrow(/not found/);
    await expect(metric('actiquest_round', { job_id: 'beta' })).rejects.toThrow(/not found/);
    expect(await metric('actiquest_round', { job_id: 'idle' })).toBe(1);
    expect(await metric('actiquest_jobs', { state: 'DONE' })).toBe(2);
    expect(await metric('actiquest_jobs', { state: 'RUNNING' })).toBe(1);

    const list = await actiquest(['jobs', ...addr]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^JOB\s+TASK\s+STATE\s+ROUNDS\s+METRIC\s+PRIORITY\s+SUBMITTED\n/);
    expect(list.stdout).toMatch(/\nalpha\s+exercise\s+DONE\s+2\/2\s+accuracy \d+\.\d%\s+3\s/);
    expect(list.stdout).toMatch(/\nbeta\s+exercise\s+DONE\s+2\/2\s/);
    expect(list.stdout).toMatch(/\nidle\s+pose\s+RUNNING\s+0\/1\s/);

    const shown = await actiquest(['job', 'alpha', ...addr]);
    expect(shown.stdout).toMatch(/^job alpha: exercise, DONE, 2 of 2 rounds, priority 3 x task weight 1\n/);
    expect(shown.stdout).toContain('description: squat or lunge');
    // The config as JSON, without the seed of the held-out validation data.
    const asJson = JSON.parse((await actiquest(['job', 'alpha', '--json', ...addr])).stdout) as { config: Record<string, unknown> };
    expect(asJson.config).toMatchObject({ jobId: 'alpha', rounds: 2, priority: 3 });
    expect(asJson.config).not.toHaveProperty('validationSeed');
    expect(shown.stdout).toMatch(/\nround\s+trainers\s+samples\s+train loss\s+val loss\s+accuracy\s+seconds\n1\s+3\/3\s+\d+/);

    const dl = path.join(h.dir, 'alpha-model');
    const got = await actiquest(['download', 'alpha', '--out', dl, ...addr]);
    expect(got.code).toBe(0);
    expect(got.stdout).toContain(`model of job alpha written to ${dl}`);
    const card = JSON.parse(fs.readFileSync(path.join(dl, 'model-card.json'), 'utf8'));
    expect(card).toMatchObject({
      format: 'actiquest-model-card/1', jobId: 'alpha', description: 'squat or lunge',
      task: { name: 'exercise' }, model: { spec: { family: 'mlp', hidden: [24] } },
      training: { rounds: 2, strategy: 'fedavg', localEpochs: 1 }, data: { datasetNodes: ['ds-a'] },
      metrics: { metric: 'accuracy', value: hist('alpha')[1]!.valAccuracy },
    });
    expect(card.files['weights.bin']).toBe(sha256(fs.readFileSync(path.join(dl, 'weights.bin'))).toString('hex'));
    expect(card.files['model.json']).toBe(sha256(fs.readFileSync(path.join(dl, 'model.json'))).toString('hex'));
    const model = await loadModelFiles(dl);
    expect(model.countParams()).toBe(card.model.parameters);
    expect(model.outputs[0]!.shape).toEqual([null, 7]);
    // The card's usage: shapes as the model has them, and examples an app checks its pipeline
    // with: the preprocessing turns each raw sample into its input, and the downloaded model
    // predicts its output.
    expect(card.usage.input.shape).toEqual([1, 32 * 17 * 3]);
    expect(card.usage.output).toMatchObject({ shape: [1, 7], layout: expect.stringContaining('squat') });
    expect(card.usage.preprocessing.length).toBeGreaterThanOrEqual(3);
    expect(card.usage.examples.samples).toHaveLength(3);
    const floats = (b64: string) => { const b = Buffer.from(b64, 'base64'); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
    for (const e of card.usage.examples.samples as { raw: string; input: string; output: number[] }[]) {
      const raw = floats(e.raw), input = floats(e.input);
      expect(raw).toHaveLength(32 * 17 * 3);
      expect(Math.max(...getTask('exercise').features(raw, 1).map((v, i) => Math.abs(v - input[i]!)))).toBeLessThan(1e-5);
      const out = (model.predict(tf.tensor(input, [1, input.length])) as tf.Tensor).dataSync();
      expect(Math.max(...e.output.map((v, i) => Math.abs(v - out[i]!)))).toBeLessThan(1e-4);
      // The ONNX file beside it predicts the same, in ONNX Runtime.
      const onnxOut = await runOnnx(fs.readFileSync(path.join(dl, 'model.onnx')), input, 1, [input.length]);
      expect(Math.max(...e.output.map((v, i) => Math.abs(v - onnxOut[i]!)))).toBeLessThan(1e-4);
    }
    // The ONNX file is named and checked in the card: run in ONNX Runtime on the 70 validation
    // samples against TF.js when the model was written.
    expect(card.files['model.onnx']).toBe(sha256(fs.readFileSync(path.join(dl, 'model.onnx'))).toString('hex'));
    expect(card.model.onnx).toMatchObject({ file: 'model.onnx', opset: 17, input: { name: 'input', shape: ['batch', 32 * 17 * 3] }, output: { name: 'output', shape: ['batch', 7] } });
    expect(card.model.onnx.checked.samples).toBe(70);
    expect(card.model.onnx.checked.maxAbsDiff).toBeLessThan(1e-4);
    // --format onnx: the ONNX file and the card, nothing else.
    const dlOnnx = path.join(h.dir, 'alpha-onnx');
    const onnxOnly = await actiquest(['download', 'alpha', '--format', 'onnx', '--out', dlOnnx, ...addr]);
    expect(onnxOnly.stdout).toContain('an ONNX model (model.onnx');
    expect(fs.readdirSync(dlOnnx).sort()).toEqual(['model-card.json', 'model.onnx']);
    expect(fs.readFileSync(path.join(dlOnnx, 'model.onnx'))).toEqual(fs.readFileSync(path.join(dl, 'model.onnx')));

    // A long job, cancelled; cancelling it again is refused, and so is downloading it.
    expect((await actiquest(['submit', specFile('gamma', `id: gamma\n${common}rounds: 500\ncohort: 2\nminTrainers: 1\n`), ...addr])).code).toBe(0);
    await until(() => hist('gamma').length >= 1, 'gamma\'s first round');
    // The only job with data: the idle pose job (priority 50, task weight 3) takes no share of it.
    expect(hist('gamma')[0]!.participants).toBe(2);
    expect((await actiquest(['cancel', 'idle', ...addr])).code).toBe(0);
    const cancelled = await actiquest(['cancel', 'gamma', ...addr]);
    expect(cancelled.stdout).toMatch(/^job gamma cancelled after \d+ of 500 rounds\n$/);
    const again = await actiquest(['cancel', 'gamma', ...addr]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('actiquest cancel: FAILED_PRECONDITION: job gamma: expected a PENDING or RUNNING job, got CANCELLED\n');
    const early = await actiquest(['download', 'gamma', '--out', path.join(h.dir, 'g'), ...addr]);
    expect(early.stderr).toMatch(/^actiquest download: FAILED_PRECONDITION: job gamma: expected a DONE job/);
    const missing = await actiquest(['job', 'nope', ...addr]);
    expect(missing.stderr).toBe('actiquest job: NOT_FOUND: job nope: not found\n');
    const gammaRounds = hist('gamma').length;

    // Submitted when no trainer is left: still waiting for trainers when the coordinator stops.
    await Promise.all(trainers.map((t) => t.close()));
    expect((await actiquest(['submit', specFile('delta', `id: delta\n${common}rounds: 1\ncohort: 2\nminTrainers: 2\n`), ...addr])).code).toBe(0);
    await c.close();
    // As if the coordinator had died between recording beta's last round and writing its model.
    fs.rmSync(path.join(h.dir, 'out', 'jobs', 'beta', 'model'), { recursive: true });

    c = await h.coordinator([...coordFlags, '--listen', c.address]);
    await c.jobs.get('beta').done;
    expect(c.jobs.list().map((j) => [j.config.jobId, c.jobs.stateOf(j)])).toEqual([
      ['alpha', 'DONE'], ['beta', 'DONE'], ['idle', 'CANCELLED'], ['gamma', 'CANCELLED'], ['delta', 'RUNNING'],
    ]);
    expect(hist('alpha').map((r) => r.participants)).toEqual([3, expect.any(Number)]);
    expect(hist('gamma')).toHaveLength(gammaRounds);
    await h.trainer(c.address, 't4');
    await h.trainer(c.address, 't5');
    await c.jobs.get('delta').done;
    expect(c.jobs.stateOf(c.jobs.get('delta'))).toBe('DONE');
    expect(JSON.parse(fs.readFileSync(path.join(h.dir, 'out', 'jobs', 'beta', 'model', 'model-card.json'), 'utf8'))).toMatchObject({ jobId: 'beta', training: { rounds: 2 } });
    const again2 = await actiquest(['download', 'alpha', '--out', path.join(h.dir, 'alpha-2'), ...addr]);
    expect(again2.code).toBe(0);
    expect(fs.readFileSync(path.join(h.dir, 'alpha-2', 'weights.bin'))).toEqual(fs.readFileSync(path.join(dl, 'weights.bin')));
  }, 300_000);
});
