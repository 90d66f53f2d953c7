/**
 * The planted-quality proof of contribution scoring (see planted.ts): 20 trainers, of which 4
 * free-ride and 3 train on a dataset node whose labels are shuffled, scored only through the
 * means of groups of 5. After 60 rounds, in each of 5 independent draws of the groups, the
 * estimated ranking has Spearman correlation at least 0.8 with the planted one, the 7 bad
 * trainers are the bottom 7, and the shuffled dataset node ranks below both honest ones.
 */
import { describe, expect, it } from 'vitest';
import { selectBackend, setFlatParams, getFlatParams, buildModel, evaluate, lossGradient } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';
import { Random } from '../src/util/index.js';
import { judgePlanted, simulatePlanted } from './fixtures/planted.js';

describe('contribution scoring with planted qualities', () => {
  it('ranks free-riders and shuffled-label trainers as the bottom 7 (Spearman >= 0.8) and the shuffled dataset node below the honest ones, from group means only', async () => {
    await selectBackend('wasm');
    const { ids, kind, draws } = await simulatePlanted({ rounds: 60, draws: 5 });
    for (const d of draws) {
      const judged = judgePlanted(ids, kind, d.trainers, d.datasets);
      expect({ draw: d.seed, ...judged, rho: judged.rho >= 0.8 }).toEqual({ draw: d.seed, rho: true, badAreBottom: true, datasetBelow: true });
      // Every trainer was seen in a group every round: no estimate rests on shrinkage alone.
      expect([...d.trainers.appearances().values()].every((n) => n === 60)).toBe(true);
    }
  }, 300_000);

  it('scores an update by the validation-loss gradient: gradient . d matches the loss change of a small step', async () => {
    await selectBackend('wasm');
    const task = getTask('exercise');
    const v = task.generateValidation('grad-check', 140);
    const data = { count: v.count, features: task.features(v.x, v.count), labels: v.y };
    const model = buildModel({ family: 'mlp', hidden: [16] }, task.inputShape, task.head, 5);
    const theta = await getFlatParams(model);
    const grad = await lossGradient(model, data, task.head);
    const rng = new Random(9);
    const d = Float32Array.from({ length: theta.length }, () => rng.normal(0, 1e-3));
    // Central difference: (L(theta + d) - L(theta - d)) / 2 cancels the second-order term.
    setFlatParams(model, theta.map((w, i) => w + d[i]!));
    const plus = (await evaluate(model, data, task.head)).loss;
    setFlatParams(model, theta.map((w, i) => w - d[i]!));
    const minus = (await evaluate(model, data, task.head)).loss;
    const predicted = grad.reduce((s, g, i) => s + g * d[i]!, 0);
    expect(Math.abs(predicted)).toBeGreaterThan(1e-4);
    expect(Math.abs((plus - minus) / 2 - predicted)).toBeLessThan(0.02 * Math.abs(predicted));
  });
});
