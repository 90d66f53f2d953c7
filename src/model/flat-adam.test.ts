import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { FlatAdam } from './flat-adam.js';
import { buildModel } from './spec.js';
import { meanLoss, targetsOf, type Head } from './head.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const head: Head = { kind: 'keypoints' };

/** Trains a fresh copy of the pose CNN for `steps` with `opt` and returns its weights. */
function train(opt: tf.Optimizer, steps: number): Float32Array[] {
  const model = buildModel({ family: 'cnn', widths: [4, 8] }, [16, 16, 3], head, 3);
  const n = 8;
  const x = tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', 11);
  const kp = new Float32Array(n * 17 * 3).map((_, i) => (i % 3 === 2 ? 2 : ((i * 7919) % 97) / 97));
  const t = targetsOf(head, { labels: new Uint8Array(n), keypoints: kp }, (b) => b, n);
  for (let s = 0; s < steps; s++) {
    tf.tidy(() => { opt.minimize(() => meanLoss(head, t, model.apply(x, { training: true }) as tf.Tensor)); });
  }
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  model.dispose();
  x.dispose();
  return weights;
}

describe('FlatAdam', () => {
  it('makes the same updates as tf.train.adam', () => {
    const a = train(tf.train.adam(0.01), 6);
    const b = train(new FlatAdam(0.01), 6);
    expect(b.length).toBe(a.length);
    let worst = 0;
    for (let i = 0; i < a.length; i++) {
      for (let j = 0; j < a[i]!.length; j++) worst = Math.max(worst, Math.abs(a[i]![j]! - b[i]![j]!));
    }
    expect(worst).toBeLessThan(1e-5);
    // And they did move: the check is not of two untrained models.
    const init = buildModel({ family: 'cnn', widths: [4, 8] }, [16, 16, 3], head, 3).getWeights().map((w) => w.dataSync() as Float32Array);
    expect(Math.max(...init[0]!.map((w, j) => Math.abs(w - a[0]![j]!)))).toBeGreaterThan(1e-3);
  });

  it('runs a step in far fewer kernels than tf.train.adam', async () => {
    const model = buildModel({ family: 'cnn', widths: [16, 32, 64, 96] }, [64, 64, 3], head, 1);
    const grads = tf.tidy(() => {
      const x = tf.randomUniform([2, 64, 64, 3]);
      return tf.variableGrads(() => tf.mean<tf.Scalar>(model.apply(x, { training: true }) as tf.Tensor)).grads;
    });
    const count = async (opt: tf.Optimizer) => (await tf.profile(() => opt.applyGradients(grads))).kernels.length;
    const stock = await count(tf.train.adam(0.01));
    const flat = await count(new FlatAdam(0.01));
    expect(model.trainableWeights.length).toBe(23);
    expect(stock).toBeGreaterThan(300);
    expect(flat).toBeLessThan(stock / 4);
  });
});
