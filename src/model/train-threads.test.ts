/**
 * Training on several threads (train-threads.ts): real worker threads on the wasm backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { buildModel, getFlatParams, selectBackend, setFlatParams, topologyJson, trainLocal, TrainThreads, type Dataset } from './index.js';
import { PROBE_STEPS } from './train-threads.js';
import { getTask } from '../tasks/index.js';

const task = getTask('exercise');

function dataset(count: number, seed: string): Dataset {
  const s = task.generateValidation(seed, count);
  return { count: s.count, features: s.x, labels: s.y };
}

describe('training threads', () => {
  const threads = new TrainThreads(2, 'wasm');
  beforeAll(async () => {
    await selectBackend('wasm');
  });
  afterAll(() => threads.close());

  it('make the same steps as one thread: each batch shared between two gives the whole batch\'s mean-loss gradient', async () => {
    // No dropout and no batch norm: one thread and two see the same function of the same rows.
    const model = buildModel({ family: 'mlp', hidden: [32], dropout: 0 }, task.inputShape, task.head, 7);
    const topology = topologyJson(model);
    const start = await getFlatParams(model);
    const data = dataset(96, 'threads-same');
    const options = { epochs: 2, batchSize: 32, learningRate: 0.01, optimizer: 'adam' as const, head: task.head, seed: 3 };
    const alone = await trainLocal(model, data, options);
    const one = await getFlatParams(model);
    setFlatParams(model, start);
    // Decided beforehand, so that every batch is shared (the first call otherwise times both ways).
    threads.remember(topology, options.batchSize, true);
    const shared = await trainLocal(model, data, { ...options, parallel: { threads, topology } });
    const two = await getFlatParams(model);
    let maxDiff = 0, moved = 0;
    for (let i = 0; i < one.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(one[i]! - two[i]!));
      moved = Math.max(moved, Math.abs(one[i]! - start[i]!));
    }
    expect(moved).toBeGreaterThan(1e-3);
    expect(maxDiff).toBeLessThan(1e-4);
    expect(shared.loss).toBeCloseTo(alone.loss, 4);
    expect(shared.samplesTrained).toBe(alone.samplesTrained);
    model.dispose();
  });

  it('time a new model and batch size both ways once and keep the faster', async () => {
    const model = buildModel({ family: 'mlp', hidden: [16], dropout: 0 }, task.inputShape, task.head, 8);
    const topology = topologyJson(model);
    expect(threads.verdict(topology, 8)).toBeUndefined();
    // Enough full batches for the untimed and timed steps of each way.
    const data = dataset(8 * (2 * (PROBE_STEPS + 1) + 1), 'threads-probe');
    await trainLocal(model, data, { epochs: 1, batchSize: 8, learningRate: 0.01, optimizer: 'adam', head: task.head, seed: 1, parallel: { threads, topology } });
    expect(typeof threads.verdict(topology, 8)).toBe('boolean');
    // Another batch size of the same model is its own question.
    expect(threads.verdict(topology, 16)).toBeUndefined();
    model.dispose();
  });

  it('fail the call with the thread\'s reason when a thread cannot build the model, and serve the next call', async () => {
    const model = buildModel({ family: 'mlp', hidden: [16], dropout: 0 }, task.inputShape, task.head, 9);
    const data = dataset(64, 'threads-bad');
    const options = { epochs: 1, batchSize: 32, learningRate: 0.01, optimizer: 'adam' as const, head: task.head, seed: 1 };
    threads.remember('{"not": "a topology"}', 32, true);
    await expect(trainLocal(model, data, { ...options, parallel: { threads, topology: '{"not": "a topology"}' } })).rejects.toThrow(/training thread: /);
    const topology = topologyJson(model);
    threads.remember(topology, 32, true);
    const r = await trainLocal(model, data, { ...options, parallel: { threads, topology } });
    expect(r.samplesTrained).toBe(64);
    expect(tf.memory().numTensors).toBeLessThan(100);
    model.dispose();
  });
});
