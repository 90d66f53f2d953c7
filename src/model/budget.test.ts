import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { buildModel, familyParams, topologyJson, type ModelSpec } from './spec.js';
import { activationBytes, buildCheckedModel, DEFAULT_BUDGET, topologyCost } from './budget.js';
import type { Head } from './head.js';
import { InvalidFieldError } from '../errors.js';

const pose = { input: [64, 64, 3], head: { kind: 'keypoints' } as Head };
const exercise = { input: [1530], head: { kind: 'classes', numClasses: 7 } as Head };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A hand-written Sequential topology over `input`. */
function sequential(input: number[], layers: { class_name: string; config: Record<string, unknown> }[]) {
  layers[0]!.config.batch_input_shape = [null, ...input];
  return { class_name: 'Sequential', config: { name: 's', layers } };
}

function refusal(fn: () => unknown): InvalidFieldError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidFieldError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('model costs', () => {
  it('counts parameters before building exactly as TF.js does after', () => {
    const cases: [ModelSpec, number[], Head][] = [
      [{ family: 'mlp', hidden: [128, 64], dropout: 0.1 }, exercise.input, exercise.head],
      [{ family: 'cnn', widths: [16, 32, 64, 96] }, pose.input, pose.head],
      [{ family: 'cnn', widths: [8, 16, 24], pool: 'avg' }, [96, 96, 3], pose.head],
      [{ family: 'vit', patch: 8, dim: 32, depth: 2, heads: 4 }, pose.input, pose.head],
    ];
    for (const [spec, input, head] of cases) {
      const model = buildModel(spec, input, head);
      expect(familyParams(spec as Exclude<ModelSpec, { family: 'layers' }>, input, head)).toBe(model.countParams());
      expect(topologyCost(JSON.parse(topologyJson(model))).params).toBe(model.countParams());
      model.dispose();
    }
  });

  it('counts FLOPs of a sample: 2 a multiply-add, 1 an element-wise op', () => {
    const model = buildModel({ family: 'mlp', hidden: [24] }, exercise.input, exercise.head);
    // dense 1530 -> 24 (+ReLU), dense 24 -> 7 (+softmax)
    expect(topologyCost(JSON.parse(topologyJson(model))).flops).toBe(2 * 1530 * 24 + 24 + 2 * 24 * 7 + 7);
    model.dispose();
  });

  it('builds a hand-written Layers topology within budget, and its cost matches the built model', () => {
    const topology = sequential(pose.input, [
      { class_name: 'Conv2D', config: { filters: 8, kernel_size: [3, 3], strides: [2, 2], padding: 'same', activation: 'relu' } },
      { class_name: 'MaxPooling2D', config: { pool_size: [2, 2] } },
      { class_name: 'Flatten', config: {} },
      { class_name: 'Dense', config: { units: 34, activation: 'sigmoid' } },
    ]);
    const { model, cost } = buildCheckedModel({ family: 'layers', topology }, pose.input, pose.head, 1, DEFAULT_BUDGET);
    expect(cost.params).toBe(model.countParams());
    expect(cost.params).toBe(3 * 3 * 3 * 8 + 8 + 16 * 16 * 8 * 34 + 34);
    expect(cost.flops).toBe(2 * 32 * 32 * 8 * 27 + 32 * 32 * 8 + 32 * 32 * 8 + 2 * 2048 * 34 + 34);
    model.dispose();
  });

  it('refuses layer types outside the list, wrong shapes, and budgets, naming the layer or budget', () => {
    const lstm = sequential([30, 51], [{ class_name: 'LSTM', config: { units: 8 } }, { class_name: 'Dense', config: { units: 7, activation: 'softmax' } }]);
    expect(refusal(() => buildCheckedModel({ family: 'layers', topology: lstm }, exercise.input, exercise.head, 1, DEFAULT_BUDGET)).message)
      .toMatch(/^model\.topology layer 0 \(LSTM\)\.class_name: expected one of InputLayer, Dense, Conv2D, .*, got "LSTM"$/);
    const flat10 = sequential([10], [{ class_name: 'Dense', config: { units: 7, activation: 'softmax' } }]);
    expect(refusal(() => buildCheckedModel({ family: 'layers', topology: flat10 }, exercise.input, exercise.head, 1, DEFAULT_BUDGET)).message)
      .toBe('model input shape: expected [1530] (the task\'s input), got [10]');
    const eight = sequential(exercise.input, [{ class_name: 'Dense', config: { units: 8, activation: 'softmax' } }]);
    expect(refusal(() => buildCheckedModel({ family: 'layers', topology: eight }, exercise.input, exercise.head, 1, DEFAULT_BUDGET)).message)
      .toBe('model output shape: expected [7] (the task\'s head), got [8]');
    const linear = sequential(exercise.input, [{ class_name: 'Dense', config: { units: 7 } }]);
    expect(refusal(() => buildCheckedModel({ family: 'layers', topology: linear }, exercise.input, exercise.head, 1, DEFAULT_BUDGET)).message)
      .toBe('model output activation: expected "softmax" (the task predicts class probabilities), got "linear"');
    expect(refusal(() => buildCheckedModel({ family: 'mlp', hidden: [4096, 4096] }, exercise.input, exercise.head, 1, DEFAULT_BUDGET)).message)
      .toBe('model: expected at most 5,000,000 parameters (the coordinator\'s --max-params budget), got 23,080,967 parameters');
    expect(refusal(() => buildCheckedModel({ family: 'cnn', widths: [64, 128] }, pose.input, pose.head, 1, { ...DEFAULT_BUDGET, maxParams: 5e6, maxFlops: 1e6 })).message)
      .toMatch(/^model: expected at most 1,000,000 forward FLOPs a sample \(the coordinator's --max-flops budget\), got [\d,]+ FLOPs$/);
  });

  it('refuses a model whose activations at the job\'s batch exceed --max-activation-bytes, and takes the families\' defaults', () => {
    // Within the parameter and FLOP budgets (3.8M, 0.78 GFLOPs), but 64 x 64 x 1024 floats a layer
    // a sample: its validation gradient at batch 64 ran the wasm backend out of memory.
    const wide = { family: 'cnn' as const, widths: [1024, 1024, 1024, 1024] };
    expect(refusal(() => buildCheckedModel(wide, pose.input, pose.head, 1, DEFAULT_BUDGET)).message)
      .toMatch(/^model: expected at most 1,024 MiB of activations for a step at batch 64 \(the coordinator's --max-activation-bytes budget\), got [\d,.]+ MiB \([\d,]+ floats a sample\)$/);
    // The job's batch counts when it is larger than the validation batch.
    const small = sequential(exercise.input, [{ class_name: 'Dense', config: { units: 7, activation: 'softmax' } }]);
    const floats = topologyCost(small).activations;
    expect(floats).toBeGreaterThan(0);
    const tight = { ...DEFAULT_BUDGET, maxActivationBytes: floats * 8 * 100 };
    buildCheckedModel({ family: 'layers', topology: small }, exercise.input, exercise.head, 1, tight, 100).model.dispose();
    expect(refusal(() => buildCheckedModel({ family: 'layers', topology: small }, exercise.input, exercise.head, 1, tight, 101)).message).toMatch(/at batch 101 /);
    for (const [spec, input, head] of [[{ family: 'cnn', widths: [16, 32, 64, 96] }, pose.input, pose.head], [{ family: 'vit', patch: 8, dim: 64, depth: 4, heads: 4, mlpRatio: 2 }, pose.input, pose.head], [{ family: 'mlp', hidden: [128] }, exercise.input, exercise.head]] as const) {
      const { model, cost } = buildCheckedModel(spec as never, [...input], head, 1, DEFAULT_BUDGET, 256);
      model.dispose();
      expect(activationBytes(cost, 256), spec.family).toBeLessThan(DEFAULT_BUDGET.maxActivationBytes);
    }
  });

  it('refuses an oversized topology without allocating its weights', () => {
    const huge = sequential(pose.input, [{ class_name: 'Flatten', config: {} }, { class_name: 'Dense', config: { units: 100_000, activation: 'sigmoid' } }, { class_name: 'Dense', config: { units: 34 } }]);
    const before = tf.memory().numBytes;
    const err = refusal(() => buildCheckedModel({ family: 'layers', topology: huge }, pose.input, pose.head, 1, DEFAULT_BUDGET));
    expect(err.message).toMatch(/^model: expected at most 5,000,000 parameters .*, got 1,232,\d{3},\d{3} parameters$/);
    expect(tf.memory().numBytes).toBe(before);
  });
});
