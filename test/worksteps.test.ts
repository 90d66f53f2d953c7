/**
 * The `worksteps` task over real sockets: two dataset nodes generate assembly-routine keypoint
 * windows with their own step mixes and out-of-order shares, five trainers train the default
 * MLP under secure aggregation, and the coordinator reports step accuracy and the out-of-order
 * flag's F1 each round; the model on disk scores as reported, and its card says both.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Harness } from './helpers.js';
import { loadModelFiles, evaluate } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';

let h: Harness;
afterEach(async () => h.close());

describe('worksteps federation', () => {
  it('learns the steps above chance in secure groups and reports the out-of-order F1 the model on disk has', async () => {
    h = new Harness();
    const c = await h.coordinator(['--task', 'worksteps', '--rounds', '6', '--cohort', '5', '--min-trainers', '5', '--min-group-size', '5',
      '--local-epochs', '3', '--validation-samples', '200', '--exit-when-done']);
    const data = ['--task', 'worksteps', '--shards', '10', '--samples-per-shard', '64'];
    await h.dataset(c.address, 'line-a', data);
    await h.dataset(c.address, 'line-b', data);
    await Promise.all(['t0', 't1', 't2', 't3', 't4'].map((id) => h.trainer(c.address, id)));

    expect(await c.done).toBe('DONE');
    const hist = c.job.history;
    expect(hist.map((r) => [r.round, r.participants, r.groups])).toEqual([[1, 5, 1], [2, 5, 1], [3, 5, 1], [4, 5, 1], [5, 5, 1], [6, 5, 1]]);
    expect(hist[5]!.valLoss).toBeLessThan(hist[0]!.valLoss);
    // Five steps: chance is 0.2.
    expect(hist[5]!.valAccuracy).toBeGreaterThan(0.35);
    for (const r of hist) {
      expect(r.valOrderF1).toBeGreaterThanOrEqual(0);
      expect(r.valOrderF1).toBeLessThanOrEqual(1);
    }
    expect(h.progress.some((l) => /round 6\/6 done .* val step acc \d+\.\d%, out-of-order F1 \d\.\d{3}/.test(l))).toBe(true);

    const task = getTask('worksteps');
    const dir = path.join(h.dir, 'out', 'model');
    const model = await loadModelFiles(dir);
    const v = task.generateValidation('test-validation', 200);
    const ev = await evaluate(model, { count: v.count, features: task.features(v.x, v.count), labels: v.y }, task.head);
    expect(ev.accuracy).toBeCloseTo(hist[5]!.valAccuracy, 5);
    expect(ev.orderF1).toBeCloseTo(hist[5]!.valOrderF1, 5);

    const card = JSON.parse(fs.readFileSync(path.join(dir, 'model-card.json'), 'utf8'));
    expect(card.task.output.classes).toEqual(['reach', 'pick', 'place', 'fasten', 'inspect',
      'reach (out of order)', 'pick (out of order)', 'place (out of order)', 'fasten (out of order)', 'inspect (out of order)']);
    expect(card.metrics.outOfOrderF1).toBeCloseTo(hist[5]!.valOrderF1, 10);
    expect(card.usage.output.shape).toEqual([1, 10]);
  }, 240_000);
});
