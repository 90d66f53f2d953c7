/**
 * Dataset-node scoring on the planted federation (see planted.ts): the coordinator knows which
 * node's shards fed each group, and the node whose labels are shuffled ranks below both honest
 * nodes. (The trainer-ranking criteria of the scoring issue are not met yet:
 * `npm run bench -- --only scoring` prints where the estimate stands round by round.)
 */
import { describe, expect, it } from 'vitest';
import { selectBackend } from '../model/backend.js';
import { setFlatParams, getFlatParams } from '../model/params.js';
import { buildModel } from '../model/spec.js';
import { evaluate, lossGradient } from '../model/train.js';
import { getTask } from '../tasks/index.js';
import { Random } from '../util/random.js';
import { simulatePlanted } from './planted.js';

describe('contribution scoring with planted qualities', () => {
  it('ranks the dataset node with shuffled labels below both honest nodes', async () => {
    await selectBackend('wasm');
    const { datasets } = await simulatePlanted({ rounds: 10 });
    const d = datasets.estimate();
    expect(d.get('bad')!).toBeLessThan(d.get('h0')!);
    expect(d.get('bad')!).toBeLessThan(d.get('h1')!);
  });

  it('scores an update by the validation-loss gradient: gradient . d matches the loss change of a small step', async () => {
    await selectBackend('wasm');
    const task = getTask('exercise');
    const v = task.generateValidation('grad-check', 140);
    const data = { count: v.count, features: task.features(v.x, v.count), labels: v.y };
    const model = buildModel({ ...task.defaultModel, hidden: [16], dropout: 0 }, task.inputShape, 5);
    const theta = await getFlatParams(model);
    const grad = await lossGradient(model, data, 7);
    const rng = new Random(9);
    const d = Float32Array.from({ length: theta.length }, () => rng.normal(0, 1e-3));
    // Central difference: (L(theta + d) - L(theta - d)) / 2 cancels the second-order term.
    setFlatParams(model, theta.map((w, i) => w + d[i]!));
    const plus = (await evaluate(model, data, 7)).loss;
    setFlatParams(model, theta.map((w, i) => w - d[i]!));
    const minus = (await evaluate(model, data, 7)).loss;
    const predicted = grad.reduce((s, g, i) => s + g * d[i]!, 0);
    expect(Math.abs(predicted)).toBeGreaterThan(1e-4);
    expect(Math.abs((plus - minus) / 2 - predicted)).toBeLessThan(0.02 * Math.abs(predicted));
  });
});
