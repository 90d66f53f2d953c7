/**
 * ONNX export: every family, and a topology of every other layer type a spec may use, written
 * as ONNX and run in ONNX Runtime (onnxruntime-web's wasm build in Node), predicts what TF.js
 * predicts within 1e-4, with weights drawn at random (batch-norm statistics included) so that
 * every weight's place in the graph matters. A topology the export cannot write is refused
 * before anything is built, naming the layer.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { buildModel, checkOnnx, DEFAULT_BUDGET, precheckModel, selectBackend, toOnnx, type ModelSpec } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';
import { InvalidFieldError } from '../src/errors.js';
import { Random } from '../src/util/index.js';

beforeAll(async () => {
  await selectBackend('wasm');
});

/** Sets every weight at random: variances in [0.5, 1.5), the rest normal with sd 0.3. */
function randomize(model: tf.LayersModel, seed: string): void {
  const rng = new Random(seed);
  for (const w of model.weights) {
    let n = 1;
    for (const d of w.shape) n *= d ?? 1;
    const v = Float32Array.from({ length: n }, () => (w.name.includes('moving_variance') ? rng.uniform(0.5, 1.5) : rng.normal(0, 0.3)));
    w.write(tf.tensor(v, w.shape as number[]));
  }
}

/** Largest |ONNX Runtime - TF.js| over 16 random inputs. */
async function exportGap(model: tf.LayersModel, inputShape: number[], seed: string): Promise<number> {
  const rng = new Random(`${seed}/inputs`);
  const per = inputShape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: 16 * per }, () => rng.uniform(-1, 1));
  const r = await checkOnnx(toOnnx(model), model, x, 16, inputShape);
  expect(r.samples).toBe(16);
  return r.maxAbsDiff;
}

describe('ONNX export', () => {
  const families: { name: string; task: string; spec: ModelSpec }[] = [
    { name: 'mlp', task: 'exercise', spec: { family: 'mlp', hidden: [32, 16] } },
    { name: 'cnn (flatten)', task: 'pose', spec: { family: 'cnn', widths: [8, 16, 16, 24] } },
    { name: 'cnn (avg pool)', task: 'pose', spec: { family: 'cnn', widths: [8, 16], pool: 'avg' } },
    { name: 'vit', task: 'pose', spec: { family: 'vit', patch: 8, dim: 32, depth: 2, heads: 4 } },
  ];
  for (const f of families) {
    it(`writes the ${f.name} family as ONNX that predicts what TF.js predicts`, async () => {
      const task = getTask(f.task);
      const model = buildModel(f.spec, task.inputShape, task.head, 7);
      randomize(model, f.name);
      expect(await exportGap(model, task.inputShape, f.name)).toBeLessThan(1e-4);
      model.dispose();
    });
  }

  it('writes every other layer type a topology may use', async () => {
    const L = tf.layers;
    const input = tf.input({ shape: [16, 12, 3] });
    const ap = (l: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => l.apply(x) as tf.SymbolicTensor;
    let a = ap(L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'elu' }), input); // 8 x 6 x 8
    a = ap(L.batchNormalization({}), a);
    a = ap(L.depthwiseConv2d({ kernelSize: [3, 2], depthMultiplier: 2, padding: 'same', useBias: true, activation: 'selu' }), a); // 8 x 6 x 16
    const b0 = ap(L.zeroPadding2d({ padding: [[1, 0], [2, 1]] }), a); // 9 x 9 x 16
    const b = ap(L.conv2d({ filters: 16, kernelSize: 3, dilationRate: 2, padding: 'valid', activation: 'hardSigmoid' }), b0); // 5 x 5 x 16
    const c = ap(L.upSampling2d({ size: [2, 2] }), ap(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), a)); // 8 x 6 x 16
    const d = ap(L.upSampling2d({ size: [1, 1], interpolation: 'bilinear' }), ap(L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' }), a));
    let m = ap(L.concatenate({ axis: -1 }), [a, c, d]); // 8 x 6 x 48
    m = ap(L.separableConv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'softplus' }), m);
    m = ap(L.add(), [m, c]);
    m = ap(L.multiply(), [m, ap(L.activation({ activation: 'sigmoid' }), d)]);
    m = ap(L.leakyReLU({ alpha: 0.2 }), m);
    m = ap(L.reLU({ maxValue: 6 }), m);
    const pooledB = ap(L.globalMaxPooling2d({}), b); // 16
    const pooledM = ap(L.globalAveragePooling2d({}), m); // 16
    let t = ap(L.reshape({ targetShape: [48, 16] }), m); // tokens
    t = ap(L.layerNormalization({}), t);
    t = ap(L.dense({ units: 12, activation: 'gelu' }), t);
    t = ap(L.activation({ activation: 'swish' }), t);
    t = ap(L.activation({ activation: 'mish' }), t);
    t = ap(L.dense({ units: 12, activation: 'tanh' }), t);
    const t1 = ap(L.globalAveragePooling1d({}), ap(L.activation({ activation: 'softsign' }), t));
    const t2 = ap(L.flatten({}), ap(L.activation({ activation: 'tanh' }), t));
    let out = ap(L.concatenate({}), [pooledB, pooledM, t1, ap(L.dropout({ rate: 0.5 }), t2)]);
    out = ap(L.dense({ units: 10 }), out);
    out = ap(L.softmax({}), out);
    const model = tf.model({ inputs: input, outputs: out });
    // The same topology passes the submit-time checks (the budget's layer list and the export's).
    precheckModel({ family: 'layers', topology: model.toJSON(undefined, false) as unknown as Record<string, unknown> }, [16, 12, 3], { kind: 'classes', numClasses: 10 }, DEFAULT_BUDGET);
    randomize(model, 'every layer');
    expect(await exportGap(model, [16, 12, 3], 'every layer')).toBeLessThan(1e-4);
    model.dispose();
  });

  it('writes a Sequential topology of stock layers', async () => {
    const model = tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 2, strides: 2, activation: 'relu6' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ] });
    randomize(model, 'sequential');
    expect(await exportGap(model, [8, 8, 1], 'sequential')).toBeLessThan(1e-4);
  });

  it('refuses, before anything is built, a topology with a layer it cannot write, naming the layer', () => {
    const model = tf.sequential({ layers: [
      tf.layers.dense({ inputShape: [32 * 17 * 3], units: 8, name: 'features' }),
      tf.layers.reshape({ targetShape: [2, 4] }),
      tf.layers.batchNormalization({ axis: 1, name: 'norm_over_rows' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 7, activation: 'softmax' }),
    ] });
    const topology = model.toJSON(undefined, false) as unknown as Record<string, unknown>;
    const refused = (() => {
      try {
        precheckModel({ family: 'layers', topology }, [32 * 17 * 3], { kind: 'classes', numClasses: 7 }, DEFAULT_BUDGET);
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(refused).toBeInstanceOf(InvalidFieldError);
    expect((refused as InvalidFieldError).field).toBe('model.topology layer 2 (norm_over_rows)');
    expect((refused as Error).message).toMatch(/expected a layer the ONNX export can write .*BatchNormalization over axis 1/);
  });
});
