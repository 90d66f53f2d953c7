import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';
import { buildModel, modelFromTopology, topologyJson, validateModelSpec, type ModelSpec } from './spec.js';
import { getFlatParams, setFlatParams } from './params.js';
import { evaluate, trainLocal } from './train.js';
import { getTask } from '../tasks/index.js';

const pose = getTask('pose');
const cnn: ModelSpec = { family: 'cnn', widths: [8, 16, 24] };
const vit: ModelSpec = { family: 'vit', patch: 16, dim: 32, depth: 2, heads: 4 };

describe('model families', () => {
  it('builds the CNN and the ViT for 64 x 64 images and rebuilds them from topology JSON with the same outputs', async () => {
    await selectBackend('wasm');
    const x = tf.randomUniform([2, 64, 64, 3], 0, 1, 'float32', 7);
    for (const spec of [cnn, vit]) {
      const model = buildModel(spec, pose.inputShape, pose.head, 3);
      expect(model.outputs[0]!.shape).toEqual([null, 34]);
      const copy = await modelFromTopology(topologyJson(model));
      setFlatParams(copy, await getFlatParams(model));
      const [a, b] = [model.predict(x) as tf.Tensor, copy.predict(x) as tf.Tensor];
      expect(Math.max(...(await tf.sub(a, b).abs().data()))).toBeLessThan(1e-6);
      tf.dispose([a, b]);
    }
    x.dispose();
  });

  it('trains both on rendered pose images on wasm: the training loss falls', async () => {
    await selectBackend('wasm');
    const s = pose.generateShard({ seed: 'spec-test', shards: 1, samplesPerShard: 48, alpha: 1 }, 0);
    const data = { count: s.count, features: s.x, labels: s.y, keypoints: s.keypoints };
    for (const spec of [cnn, vit]) {
      const model = buildModel(spec, pose.inputShape, pose.head, 3);
      const before = (await evaluate(model, data, pose.head)).loss;
      await trainLocal(model, data, { epochs: 4, batchSize: 16, learningRate: 0.003, optimizer: 'adam', head: pose.head, seed: 1 });
      const after = (await evaluate(model, data, pose.head)).loss;
      expect(after).toBeLessThan(0.7 * before);
    }
  }, 120_000);

  it('refuses specs that do not fit, naming the field', () => {
    expect(() => validateModelSpec({ family: 'resnet' })).toThrow('model.family: expected "mlp", "cnn", "vit" or "layers"');
    expect(() => validateModelSpec({ family: 'cnn', widths: [] })).toThrow('model.widths: expected a list of 1 to 8 integers 1 to 1024');
    expect(() => validateModelSpec({ family: 'vit', patch: 8, dim: 30, depth: 2, heads: 4 })).toThrow('model.dim: expected a multiple of heads (4)');
    expect(() => buildModel({ family: 'vit', patch: 12, dim: 32, depth: 1, heads: 4 }, pose.inputShape, pose.head)).toThrow("model.patch: expected a divisor of the input's 64 x 64");
    expect(() => buildModel(cnn, [96], pose.head)).toThrow('model.family: expected a family for flat inputs');
    expect(() => buildModel({ family: 'cnn', widths: [8, 8, 8, 8, 8, 8, 8] }, pose.inputShape, pose.head)).toThrow('model.widths: expected at most 6 entries for a 64 x 64 input');
  });
});
