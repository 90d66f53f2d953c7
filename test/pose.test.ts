/**
 * The `pose` task over real sockets: dataset nodes render person images at two sites, three
 * trainers train a small CNN on wasm (through the project's conv backprop kernels) under secure
 * aggregation, and the coordinator reports PCK@0.2 and the mean keypoint error each round.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Harness } from './helpers.js';
import { loadModelFiles, evaluate } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';
import { CoordinatorStore } from '../src/store/index.js';
import { writeCocoFixture } from './fixtures/coco-fixture.js';

let h: Harness;
afterEach(async () => h.close());

describe('pose federation', () => {
  it('trains a CNN on rendered keypoint images in secure groups; loss falls and the model on disk scores as reported', async () => {
    h = new Harness();
    const c = await h.coordinator(['--task', 'pose', '--model', '{"family":"cnn","widths":[8,16,24]}', '--rounds', '3',
      '--cohort', '5', '--min-trainers', '5', '--min-group-size', '5', '--local-epochs', '2', '--batch-size', '16', '--lr', '0.003',
      '--validation-samples', '64', '--exit-when-done']);
    const data = ['--task', 'pose', '--shards', '4', '--samples-per-shard', '24'];
    await h.dataset(c.address, 'gym', data);
    await h.dataset(c.address, 'clinic', data);
    await Promise.all(['t0', 't1', 't2', 't3', 't4'].map((id) => h.trainer(c.address, id)));

    expect(await c.done).toBe('DONE');
    const hist = c.job.history;
    expect(hist.map((r) => [r.round, r.participants, r.groups])).toEqual([[1, 5, 1], [2, 5, 1], [3, 5, 1]]);
    expect(hist[2]!.valLoss).toBeLessThan(hist[0]!.valLoss);
    expect(h.progress.some((l) => /round 3\/3 done .* val PCK@0\.2 \d+\.\d%, mean keypoint error \d+\.\d+ px/.test(l))).toBe(true);

    // Each round had one group of all five, so its mean update applied alone is the round's
    // FedAvg step: the group's recorded evaluation is the round's change in loss and PCK.
    const store = new CoordinatorStore(path.join(h.dir, 'out'));
    const rounds = store.rounds<unknown, { evaluated: { lossChange: number; metricChange: number } }[]>('job-1');
    store.close();
    for (const r of [2, 3]) {
      const e = rounds[r - 1]!.groups[0]!.evaluated;
      expect(e.lossChange).toBeCloseTo(hist[r - 1]!.valLoss - hist[r - 2]!.valLoss, 5);
      expect(e.metricChange).toBeCloseTo(hist[r - 1]!.valAccuracy - hist[r - 2]!.valAccuracy, 5);
    }

    const task = getTask('pose');
    const model = await loadModelFiles(path.join(h.dir, 'out', 'model'));
    const v = task.generateValidation('test-validation', 64);
    const ev = await evaluate(model, { count: v.count, features: v.x, labels: v.y, keypoints: v.keypoints }, task.head);
    expect(ev.loss).toBeCloseTo(hist[2]!.valLoss, 5);
    expect(ev.accuracy).toBeCloseTo(hist[2]!.valAccuracy, 5);
  }, 240_000);

  it('a trainer process on webgpu trains rounds beside one on wasm, and registers its backend and device', async () => {
    h = new Harness();
    // CI has no GPU: the trainer process runs webgpu on Mesa's llvmpipe. The harness's own roles
    // run on wasm, as always.
    const c = await h.coordinator(['--task', 'pose', '--model', '{"family":"cnn","widths":[8,16]}', '--secure-aggregation', 'false', '--rounds', '2',
      '--cohort', '2', '--min-trainers', '2', '--local-epochs', '2', '--batch-size', '8', '--lr', '0.004', '--validation-samples', '16',
      '--round-timeout', '300', '--cohort-wait', '120', '--exit-when-done']);
    await h.dataset(c.address, 'gym', ['--task', 'pose', '--shards', '2', '--samples-per-shard', '16']);
    await h.trainer(c.address, 'cpu-0');
    h.trainerProcess(c.address, 'gpu-0', ['--backend', 'webgpu', '--webgpu-software']);

    expect(await c.done).toBe('DONE');
    const hist = c.job.history;
    expect(hist.map((r) => [r.round, r.participants, [...r.reporters].sort()])).toEqual([[1, 2, ['cpu-0', 'gpu-0']], [2, 2, ['cpu-0', 'gpu-0']]]);
    for (const r of hist) expect(Number.isFinite(r.valLoss)).toBe(true);
    const store = new CoordinatorStore(path.join(h.dir, 'out'));
    const nodes = Object.fromEntries(store.nodes<{ backend: string; device: string }>().map((n) => [n.nodeId, n.record]));
    store.close();
    expect(nodes['gpu-0']).toMatchObject({ backend: 'webgpu', device: expect.stringMatching(/^software \(AQ_WEBGPU_SOFTWARE\): .*Mesa/) });
    expect(nodes['cpu-0']).toMatchObject({ backend: 'wasm' });
  }, 240_000);

  it('serves imported COCO person crops like any other shard: a round trains on them', async () => {
    h = new Harness();
    const file = writeCocoFixture(path.join(h.dir, 'coco'), 6);
    const c = await h.coordinator(['--task', 'pose', '--model', '{"family":"cnn","widths":[8,16]}', '--secure-aggregation', 'false', '--rounds', '1',
      '--cohort', '3', '--min-trainers', '3', '--local-epochs', '1', '--batch-size', '2', '--validation-samples', '16', '--exit-when-done']);
    const ds = await h.dataset(c.address, 'coco', ['--task', 'pose', '--coco', file, '--coco-images', path.join(h.dir, 'coco', 'val'), '--samples-per-shard', '2']);
    await Promise.all(['t0', 't1', 't2'].map((id) => h.trainer(c.address, id)));
    expect(await c.done).toBe('DONE');
    const r = c.job.history[0]!;
    expect(r.participants).toBe(3);
    // The 6 people of the fixture, in 3 shards of 2, all dealt and trained on once.
    expect(r.samples).toBe(6);
    expect(ds.address).toMatch(/^127\.0\.0\.1:\d+$/);
  }, 120_000);
});
