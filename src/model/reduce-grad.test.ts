import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { registerOnesGrads, registerReduceGrads } from './reduce-grad.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** d/dx of sum(op(x) * w) for a random w, as a plain array. */
function grad(op: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, seed: number): Float32Array {
  return tf.tidy(() => {
    const y = op(x);
    const w = tf.randomNormal(y.shape, 0, 1, 'float32', seed + 1); // seed 0 would mean 'random'
    return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(op(t), w)))(x).dataSync() as Float32Array;
  });
}

describe('Sum and Mean gradients without ones', () => {
  it("give the values of tfjs-core's, for every kind of axis", async () => {
    const x = tf.randomNormal([4, 3, 5, 2], 0, 1, 'float32', 1);
    const ops: [string, (t: tf.Tensor) => tf.Tensor][] = [
      ['sum all', (t) => tf.sum(t)], ['sum 0,1,2', (t) => tf.sum(t, [0, 1, 2])], ['sum -1 keepDims', (t) => tf.sum(t, -1, true)],
      ['mean all', (t) => tf.mean(t)], ['mean 0,1,2', (t) => tf.mean(t, [0, 1, 2])], ['mean 1 keepDims', (t) => tf.mean(t, 1, true)],
      ['moments', (t) => tf.moments(t, [0, 1, 2]).variance],
    ];
    const stock = ops.map(([, op], i) => grad(op, x, i));
    const kernels = async () => (await tf.profile(() => tf.grad((t: tf.Tensor) => tf.mean(t, [0, 1, 2]))(x))).kernels.map((k) => k.name);
    expect(await kernels()).not.toContain('Tile');
    registerReduceGrads();
    // In effect: the gradient is now a broadcast (Tile), not a product with ones.
    expect(await kernels()).toContain('Tile');
    // The benchmarks' baseline, tfjs-core's formulation, gives the same values too.
    registerOnesGrads();
    expect(await kernels()).not.toContain('Tile');
    ops.forEach(([name, op], i) => {
      const again = grad(op, x, i);
      expect(Math.max(...again.map((v, j) => Math.abs(v - stock[i]![j]!))), name).toBeLessThan(1e-6);
    });
    registerReduceGrads(true);
    ops.forEach(([name, op], i) => {
      const ours = grad(op, x, i);
      let worst = 0;
      for (let j = 0; j < ours.length; j++) worst = Math.max(worst, Math.abs(ours[j]! - stock[i]![j]!));
      expect(worst, name).toBeLessThan(1e-6);
    });
  });
});
