/**
 * Replayed training steps (step-replay.ts) and FlatAdam's one-kernel update on a real webgpu
 * backend with no GPU: Dawn's OpenGL ES backend on Mesa's llvmpipe (settings.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';
import { configureBackends } from './settings.js';
import { trainingForward } from './bn-act.js';
import { FlatAdam } from './flat-adam.js';
import { buildModel, type ModelSpec } from './spec.js';
import { meanLoss, targetsOf, type Head, type Targets } from './head.js';
import { ReplayedSteps } from './step-replay.js';
import { trainLocal, type Dataset } from './train.js';

configureBackends({ webGpuSoftware: true });

const head: Head = { kind: 'keypoints' };
const SHAPE = [16, 16, 3];
const N = 8;
const KEYS = ['coords', 'mask', 'torso'] as const;

/** Batch `i` of made-up images and keypoints (the same for every caller). */
function batch(i: number): { x: Float32Array; kp: Float32Array } {
  const x = new Float32Array(N * 16 * 16 * 3).map((_, j) => ((j * 7919 + i * 104729) % 1009) / 1009);
  const kp = new Float32Array(N * 17 * 3).map((_, j) => (j % 3 === 2 ? ((j + i) % 5 === 0 ? 0 : 2) : ((j * 31 + i * 17) % 97) / 97));
  return { x, kp };
}
const targets = (kp: Float32Array): Targets => targetsOf(head, { labels: new Uint8Array(N), keypoints: kp }, (b) => b, N);

async function weightsOf(model: tf.LayersModel): Promise<Float32Array[]> {
  return Promise.all(model.getWeights().map(async (w) => (await w.data()) as Float32Array));
}

const INITIAL = new Map<string, Float32Array[]>();

/** A new `spec` model with the same weights every time (initialisers draw at random). */
async function freshModel(spec: ModelSpec): Promise<tf.LayersModel> {
  const model = buildModel(spec, SHAPE, head, 5);
  const key = JSON.stringify(spec);
  if (!INITIAL.has(key)) INITIAL.set(key, await weightsOf(model));
  const init = INITIAL.get(key)!.map((w, i) => tf.tensor(w, model.getWeights()[i]!.shape));
  model.setWeights(init);
  tf.dispose(init);
  return model;
}

/** `steps` steps of a fresh `spec` through plain TF.js calls, or replayed: losses and weights. */
async function train(spec: ModelSpec, steps: number, replayed: boolean, opts: { stockAdam?: boolean; setWeightsAt?: number } = {}) {
  const model = await freshModel(spec);
  const forward = trainingForward(model);
  const optimizer = opts.stockAdam ? tf.train.adam(0.01) : new FlatAdam(0.01);
  const losses: number[] = [];
  let stepper: ReplayedSteps | null = null;
  let slots: tf.Tensor[] = [];
  let inFlight: Promise<number> | null = null;
  for (let i = 0; i < steps; i++) {
    if (i === opts.setWeightsAt) {
      // As a trainer does at a round's start: the variables get new buffers.
      const w = model.getWeights().map((t) => tf.mul(t, 0.5));
      model.setWeights(w);
      tf.dispose(w);
    }
    const { x, kp } = batch(i % 3);
    if (!replayed) {
      const loss = tf.tidy(() => {
        const t = targets(kp);
        return optimizer.minimize(() => meanLoss(head, t, forward(tf.tensor(x, [N, ...SHAPE]))), true)!;
      });
      losses.push((await loss.data())[0]!);
      loss.dispose();
      continue;
    }
    const t = targets(kp);
    const values = await Promise.all(KEYS.map((k) => t[k]!.data()));
    if (!stepper) {
      slots = [tf.zeros([N, ...SHAPE]), ...KEYS.map((k) => tf.zerosLike(t[k]!))];
      const [sx, ...st] = slots;
      const tt: Targets = { coords: st[0] as tf.Tensor2D, mask: st[1] as tf.Tensor2D, torso: st[2] as tf.Tensor1D };
      stepper = new ReplayedSteps(slots, () => optimizer.minimize(() => meanLoss(head, tt, forward(sx!)), true)!);
    }
    tf.dispose(KEYS.map((k) => t[k]!));
    // As trainLocal does: the next step issued before the last one's loss is read.
    const { loss } = await stepper.submit([x, ...values]);
    if (inFlight) losses.push(await inFlight);
    inFlight = loss;
  }
  if (inFlight) losses.push(await inFlight);
  const weights = await weightsOf(model);
  const out = { losses, weights, replays: stepper?.replays ?? 0, refused: stepper?.refused ?? null, dispatches: stepper?.dispatches ?? 0 };
  stepper?.dispose();
  tf.dispose(slots);
  optimizer.dispose();
  model.dispose();
  return out;
}

const CNN: ModelSpec = { family: 'cnn', widths: [4, 8] };

describe('replayed training steps on webgpu, on a software adapter', () => {
  beforeAll(async () => {
    const info = await selectBackend('webgpu');
    expect(info.device).toMatch(/^software/);
  });

  it('FlatAdam\'s one-kernel update is tf.train.adam\'s on the cpu backend', async () => {
    const shapes = [[3, 5], [7], [2, 2, 2]];
    const run = async (opt: () => tf.Optimizer) => {
      const vars = shapes.map((s, i) => tf.variable(tf.tensor(Array.from({ length: s.reduce((a, b) => a * b) }, (_, j) => Math.sin(i * 10 + j)), s), true, `fa${i}`));
      const o = opt();
      for (let step = 0; step < 5; step++) {
        const grads = Object.fromEntries(vars.map((v, i) => [v.name, tf.tensor(Array.from({ length: v.size }, (_, j) => Math.cos(step * 3 + i * 7 + j)), v.shape)]));
        o.applyGradients(grads);
        tf.dispose(Object.values(grads));
      }
      const out = await Promise.all(vars.map(async (v) => Array.from(await v.data())));
      o.dispose();
      tf.dispose(vars);
      return out.flat();
    };
    const gpu = await run(() => new FlatAdam(0.05));
    await selectBackend('cpu');
    const cpu = await run(() => tf.train.adam(0.05));
    await selectBackend('webgpu');
    expect(gpu.length).toBe(cpu.length);
    const worst = Math.max(...gpu.map((g, i) => Math.abs(g - cpu[i]!)));
    expect(worst).toBeLessThan(1e-5);
    // They moved: 5 steps of up to 0.05 each.
    expect(Math.abs(cpu[0]! - Math.sin(0))).toBeGreaterThan(0.05);
  });

  it('a replayed step computes exactly what the plain step does, in far fewer calls', async () => {
    const plain = await train(CNN, 10, false);
    const replayed = await train(CNN, 10, true);
    expect(replayed.refused).toBeNull();
    // One warm-up step and two recorded, then replays.
    expect(replayed.replays).toBe(7);
    expect(replayed.dispatches).toBeGreaterThan(20);
    expect(replayed.losses).toEqual(plain.losses);
    expect(replayed.weights).toEqual(plain.weights);
    expect(plain.losses.at(-1)!).toBeLessThan(plain.losses[0]!);
  });

  it('records again once a model\'s weights are set, and stays exact', async () => {
    const plain = await train(CNN, 12, false, { setWeightsAt: 6 });
    const replayed = await train(CNN, 12, true, { setWeightsAt: 6 });
    expect(replayed.refused).toBeNull();
    // Replays at steps 3 to 5, records at 6 and 7, replays from 8.
    expect(replayed.replays).toBe(7);
    expect(replayed.losses).toEqual(plain.losses);
    expect(replayed.weights).toEqual(plain.weights);
  });

  it('refuses steps it cannot replay, naming why, and still trains them', async () => {
    const dropout = await train({ ...CNN, dropout: 0.3 }, 6, true);
    expect(dropout.refused).toMatch(/different kernels, uniforms or uploads/);
    expect(dropout.replays).toBe(0);
    const stock = await train(CNN, 6, true, { stockAdam: true });
    expect(stock.refused).toMatch(/assigns variable .* a new tensor/);
    expect(stock.replays).toBe(0);
    const plainStock = await train(CNN, 6, false, { stockAdam: true });
    expect(stock.losses).toEqual(plainStock.losses);
  });

  it('trainLocal replays full batches: the same model and progress as without replaying', async () => {
    // 44 rows in batches of 8: five full batches an epoch, replayed once recorded, and a short one not.
    const rows = 44;
    const features = new Float32Array(rows * 16 * 16 * 3).map((_, j) => ((j * 7919) % 1009) / 1009);
    const keypoints = new Float32Array(rows * 17 * 3).map((_, j) => (j % 3 === 2 ? (j % 7 === 0 ? 0 : 2) : ((j * 31) % 97) / 97));
    const data: Dataset = { count: rows, features, labels: new Uint8Array(rows), keypoints };
    const run = async (replay: boolean) => {
      configureBackends({ replaySteps: replay });
      const model = await freshModel(CNN);
      const progress: [number, number][] = [];
      const r = await trainLocal(model, data, { epochs: 2, batchSize: N, learningRate: 0.01, optimizer: 'adam', head, seed: 3, onProgress: (s, l) => void progress.push([s, l]) });
      const weights = await weightsOf(model);
      model.dispose();
      return { ...r, progress, weights };
    };
    try {
      const replayed = await run(true);
      const plain = await run(false);
      expect(plain.replayedSteps).toBe(0);
      // 12 steps: a warm-up and two recorded, the two short ones not replayed.
      expect(replayed.replayedSteps).toBe(7);
      expect(replayed.progress).toEqual(plain.progress);
      expect(replayed.progress.map(([s]) => s)).toEqual([8, 16, 24, 32, 40, 44, 52, 60, 68, 76, 84, 88]);
      expect(replayed.loss).toBe(plain.loss);
      expect(replayed.weights).toEqual(plain.weights);
    } finally {
      configureBackends({ replaySteps: true });
    }
  });
});
