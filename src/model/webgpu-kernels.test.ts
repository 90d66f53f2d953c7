/**
 * The project's WGSL kernels on a real webgpu backend, with no GPU: Dawn's OpenGL ES backend on
 * Mesa's llvmpipe (`configureBackends({ webGpuSoftware: true })`, settings.ts). Each is checked against the cpu backend's
 * stock kernels, as conv-grad.test.ts checks the wasm ones; the GPU runs the same shaders
 * (`npm run bench:train -- --check` there).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';
import { configureBackends } from './settings.js';
import { CONV_CASES, convGrads, maxRelErr } from '../../test/fixtures/conv-check.js';
import { trainingForward } from './bn-act.js';
import { TokenNorm } from './vit-layers.js';
import { buildModel } from './spec.js';
import { meanLoss, targetsOf } from './head.js';
import { getTask } from '../tasks/index.js';

configureBackends({ webGpuSoftware: true });

describe('the project\'s webgpu kernels, on a software adapter', () => {
  beforeAll(async () => {
    const info = await selectBackend('webgpu');
    expect(info.device).toMatch(/^software/);
  });

  // The large case takes minutes on llvmpipe and adds nothing the small ones do not check.
  for (const c of CONV_CASES.filter((k) => !k.name.startsWith('large'))) {
    it(`conv gradients match the cpu backend's stock ones: ${c.name}`, async () => {
      await selectBackend('cpu');
      const want = await convGrads(c);
      await selectBackend('webgpu');
      expect(tf.getBackend()).toBe('webgpu');
      const got = await convGrads(c);
      expect(maxRelErr(got.df, want.df)).toBeLessThan(1e-5);
      expect(maxRelErr(got.dx, want.dx)).toBeLessThan(1e-5);
    });
  }
});

/** One profiled training step of `model` through `forward` on pose images: loss, flat gradients, kernels run. */
async function profiledStep(model: tf.LayersModel, forward: (x: tf.Tensor) => tf.Tensor, count: number, seed: string) {
  const task = getTask('pose');
  const images = task.generateValidation(seed, count);
  const x = tf.tensor(images.x, [count, ...task.inputShape]);
  const t = targetsOf(task.head, { labels: images.y, keypoints: images.keypoints }, (b) => b, count);
  let out: { loss: number; grads: Float32Array } = { loss: 0, grads: new Float32Array() };
  const info = await tf.profile(async () => {
    const { value, grads } = tf.variableGrads(() => meanLoss(task.head, t, forward(x)));
    const flatGrads = tf.concat(model.trainableWeights.map((w) => grads[(w as unknown as { val: tf.Variable }).val.name]!.reshape([-1])));
    out = { loss: (await value.data())[0]!, grads: (await flatGrads.data()) as Float32Array };
    tf.dispose([value, flatGrads, ...Object.values(grads)]);
  });
  model.dispose();
  tf.dispose([x, t.coords!, t.mask!, t.torso!]);
  return { ...out, kernels: info.kernels.length };
}

/** A [batch norm, activation] model with set weights, its loss sum(y * w) and the gradients. */
async function bnStep(x: Float32Array, shape: number[], act: 'none' | 'relu' | 'relu6', fused: boolean) {
  const chans = shape.at(-1)!;
  const rng = (seed: number) => Float32Array.from({ length: chans }, (_, i) => Math.sin(seed * 7.1 + i * 1.3));
  const layers: tf.layers.Layer[] = [tf.layers.batchNormalization({ inputShape: shape.slice(1), momentum: 0.9, epsilon: 1e-3 })];
  if (act === 'relu') layers.push(tf.layers.reLU());
  if (act === 'relu6') layers.push(tf.layers.reLU({ maxValue: 6 }));
  const model = tf.sequential({ layers });
  model.layers[0]!.setWeights([tf.tensor(rng(1)).mul(2).add(0.5), tf.tensor(rng(2)).mul(3), tf.tensor(rng(3)), tf.tensor(rng(4)).abs().add(0.5)]);
  const xt = tf.tensor(x, shape);
  const w = tf.tensor(Float32Array.from({ length: x.length }, (_, i) => Math.cos(i * 0.37)), shape);
  const forward = fused ? trainingForward(model) : (t: tf.Tensor) => model.apply(t, { training: true }) as tf.Tensor;
  let y: tf.Tensor | null = null;
  const [gamma, beta] = model.layers[0]!.trainableWeights.map((v) => (v as unknown as { val: tf.Variable }).val);
  const g = tf.grads((a: tf.Tensor, _g: tf.Tensor, _b: tf.Tensor) => {
    y = tf.keep(forward(a));
    return tf.sum(tf.mul(y, w));
  })([xt, gamma!, beta!]);
  const read = async (t: tf.Tensor) => (await t.data()) as Float32Array;
  const out = {
    y: await read(y!), dx: await read(g[0]!), dgamma: await read(g[1]!), dbeta: await read(g[2]!),
    movingMean: await read(model.layers[0]!.getWeights()[2]!), movingVariance: await read(model.layers[0]!.getWeights()[3]!),
  };
  model.dispose();
  tf.dispose([xt, w, y!, ...g]);
  return out;
}

describe('batch norm and ReLU as one op on webgpu (bn-act.ts), against tfjs-layers on the cpu backend', () => {
  const cases: { name: string; shape: number[]; act: 'none' | 'relu' | 'relu6'; offset?: number }[] = [
    { name: 'ReLU6 after 4-d batch norm, odd sizes', shape: [3, 5, 7, 6], act: 'relu6' },
    { name: 'ReLU, 20 channels, many row blocks', shape: [8, 16, 16, 20], act: 'relu' },
    { name: 'no activation, 2-d input, 70 channels (two channel tiles)', shape: [33, 70], act: 'none' },
    { name: 'ReLU6, a mean far from zero (variance must not cancel)', shape: [4, 8, 8, 16], act: 'relu6', offset: 1000 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const n = c.shape.reduce((a, b) => a * b, 1);
      const x = Float32Array.from({ length: n }, (_, i) => (c.offset ?? 0) + 3 * Math.sin(i * 0.61) + Math.cos(i * 0.11));
      await selectBackend('cpu');
      const want = await bnStep(x, c.shape, c.act, false);
      await selectBackend('webgpu');
      const got = await bnStep(x, c.shape, c.act, true);
      for (const k of ['y', 'dx', 'dgamma', 'dbeta', 'movingMean', 'movingVariance'] as const) {
        expect(maxRelErr(got[k], want[k]), k).toBeLessThan(c.offset ? 2e-3 : 1e-4);
      }
    });
  }

  it('a training step of the pose CNN takes a fraction of the kernels, with the same loss and gradients', async () => {
    await selectBackend('webgpu');
    const task = getTask('pose');
    const run = (fused: boolean) => {
      const model = buildModel(task.defaultModel, task.inputShape, task.head, 1);
      return profiledStep(model, fused ? trainingForward(model) : (a) => model.apply(a, { training: true }) as tf.Tensor, 4, 'bn-act');
    };
    const stock = await run(false);
    const fused = await run(true);
    expect(fused.loss).toBeCloseTo(stock.loss, 4);
    expect(maxRelErr(fused.grads, stock.grads)).toBeLessThan(1e-3);
    console.log(`pose CNN step: ${stock.kernels} kernels through tfjs-layers, ${fused.kernels} with bn-act`);
    expect(fused.kernels).toBeLessThan(stock.kernels / 3);
  });
});

describe('layer norm as one op on webgpu (layer-norm.ts), against the cpu backend', () => {
  const cases: { name: string; shape: number[]; offset?: number }[] = [
    { name: '[batch, tokens, 64] as in the ViT', shape: [3, 17, 64] },
    { name: '70 columns (two column tiles), many row blocks', shape: [40, 30, 70] },
    { name: 'rows far from zero', shape: [5, 9, 16], offset: 300 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const n = c.shape.reduce((a, b) => a * b, 1), dim = c.shape.at(-1)!;
      const x = Float32Array.from({ length: n }, (_, i) => (c.offset ?? 0) + 2 * Math.sin(i * 0.37) + Math.cos(i * 0.05));
      const gamma = Float32Array.from({ length: dim }, (_, i) => 1 + 0.5 * Math.sin(i));
      const beta = Float32Array.from({ length: dim }, (_, i) => 0.3 * Math.cos(i));
      const w = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.71));
      const run = async () => {
        const layer = new TokenNorm({});
        layer.build(c.shape);
        layer.setWeights([tf.tensor(gamma), tf.tensor(beta)]);
        const [g, b] = layer.trainableWeights.map((v) => (v as unknown as { val: tf.Variable }).val);
        const xt = tf.tensor(x, c.shape), wt = tf.tensor(w, c.shape);
        let y: tf.Tensor | null = null;
        const grads = tf.grads((a: tf.Tensor, _g: tf.Tensor, _b: tf.Tensor) => {
          y = tf.keep(layer.apply(a) as tf.Tensor);
          return tf.sum(tf.mul(y, wt));
        })([xt, g!, b!]);
        const out = { y: (await y!.data()) as Float32Array, dx: (await grads[0]!.data()) as Float32Array, dgamma: (await grads[1]!.data()) as Float32Array, dbeta: (await grads[2]!.data()) as Float32Array };
        tf.dispose([xt, wt, y!, ...grads, ...layer.weights.map((v) => v.read())]);
        return out;
      };
      await selectBackend('cpu');
      const want = await run();
      await selectBackend('webgpu');
      const got = await run();
      for (const k of ['y', 'dx'] as const) expect(maxRelErr(got[k], want[k]), k).toBeLessThan(c.offset ? 1e-3 : 1e-4);
      // dgamma and dbeta are sums over every row of terms that mostly cancel: float32 order.
      for (const k of ['dgamma', 'dbeta'] as const) expect(maxRelErr(got[k], want[k]), k).toBeLessThan(1e-3);
    });
  }

  it('a ViT training step takes fewer kernels, with the same loss and gradients', async () => {
    await selectBackend('webgpu');
    const task = getTask('pose');
    const spec = { family: 'vit' as const, patch: 8, dim: 32, depth: 2, heads: 4, mlpRatio: 2 };
    const step = (fused: boolean) => {
      // The baseline: the same model through tfjs's composite layer norm, on webgpu too.
      configureBackends({ fusedLayerNorm: fused });
      const model = buildModel(spec, task.inputShape, task.head, 1);
      return profiledStep(model, (a) => model.apply(a, { training: true }) as tf.Tensor, 2, 'ln');
    };
    const stock = await step(false);
    const fused = await step(true);
    configureBackends({ fusedLayerNorm: true });
    console.log(`ViT step: ${stock.kernels} kernels with tfjs's layer norm, ${fused.kernels} with layer-norm.ts`);
    expect(fused.loss).toBeCloseTo(stock.loss, 4);
    expect(maxRelErr(fused.grads, stock.grads)).toBeLessThan(1e-3);
    expect(fused.kernels).toBeLessThan(stock.kernels);
  });
});
