/**
 * Local training and evaluation on one process's backend, for any {@link Head} (classes or
 * keypoints). Training checks its AbortSignal between batches, so a cancelled round stops
 * within one batch. Inputs take the model's own input shape (flat vectors for an MLP, images
 * for a CNN or ViT).
 */
import * as tf from '@tensorflow/tfjs';
import { FlatAdam } from './flat-adam.js';
import { trainingForward } from './bn-act.js';
import { Random } from '../util/index.js';
import { lossSum, meanLoss, metricCounts, targetsOf, targetValues, type Head } from './head.js';
import { ReplayedSteps, TARGET_KEYS } from './step-replay.js';
import { backendSettings } from './settings.js';
import type { TrainThreads, Stepper } from './train-threads.js';

export type { Head } from './head.js';

/** Model input and targets: `count` rows of `features / count` floats, labels, keypoints. */
export interface Dataset {
  count: number;
  features: Float32Array;
  labels: Uint8Array;
  /** 17 x (x, y, visibility) a row, for keypoint heads. */
  keypoints?: Float32Array;
}

/** Local training settings of one round. */
export interface LocalTrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  optimizer: 'sgd' | 'adam';
  head: Head;
  seed: number;
  signal?: AbortSignal;
  /**
   * Threads that share each batch (train-threads.ts), with the model's topology JSON, which
   * they build their copies from; absent or one thread: this thread alone.
   */
  parallel?: { threads: TrainThreads; topology: string };
  /** Called after each batch with samples done so far. */
  onProgress?: (samplesDone: number, loss: number) => void | Promise<void>;
}

/** What a round of local training did. */
export interface LocalTrainResult {
  /** Mean training loss over the last epoch. */
  loss: number;
  samplesTrained: number;
  seconds: number;
  /** Steps that ran as replays of a recorded one (webgpu, step-replay.ts). */
  replayedSteps: number;
}

/**
 * Adam is the flat one on webgpu, where every kernel is a dispatch and it makes the step 2x to
 * 4.7x faster (docs/performance.md); elsewhere tf.train.adam. The two agree to 1e-5 after a few
 * steps, but training amplifies such differences over many rounds: with the flat one on wasm,
 * the planted-quality scoring test's draw groups-1 no longer had all 7 bad trainers last at
 * round 60. Keeping the CPU backends' numerics keeps that proof as it was measured.
 */
function makeOptimizer(name: 'sgd' | 'adam', lr: number): tf.Optimizer {
  if (name !== 'adam') return tf.train.momentum(lr, 0.9);
  return tf.getBackend() === 'webgpu' ? new FlatAdam(lr) : tf.train.adam(lr);
}

/** Thrown when training stops because its signal aborted. */
export class TrainingAbortedError extends Error {
  constructor() {
    super('training aborted');
    this.name = 'TrainingAbortedError';
  }
}

/** The model's input shape without the batch dimension. */
function inputShapeOf(model: tf.LayersModel): number[] {
  return model.inputs[0]!.shape.slice(1).map((d) => d ?? 1);
}

/** Rows of `features` picked by `index`, one after another in `scratch` (or a new array). */
function batchValues(data: Dataset, index: (b: number) => number, n: number, scratch?: Float32Array): Float32Array {
  const dim = data.features.length / data.count;
  const buf = scratch && scratch.length >= n * dim ? scratch.subarray(0, n * dim) : new Float32Array(n * dim);
  for (let b = 0; b < n; b++) buf.set(data.features.subarray(index(b) * dim, (index(b) + 1) * dim), b * dim);
  return buf;
}

/** Rows of `features` picked by `index`, as a batch tensor of the model's input shape. */
export function inputBatch(model: tf.LayersModel, data: Dataset, index: (b: number) => number, n: number, scratch?: Float32Array): tf.Tensor {
  return tf.tensor(batchValues(data, index, n, scratch), [n, ...inputShapeOf(model)]);
}

/**
 * Full batches on webgpu as replayed steps (step-replay.ts): input tensors kept for the whole
 * round, each batch written into them. Null where steps are not replayed (other backends,
 * SGD with momentum, threads, `replaySteps` off).
 */
function replayedBatches(model: tf.LayersModel, data: Dataset, options: LocalTrainOptions, optimizer: tf.Optimizer, forward: (x: tf.Tensor) => tf.Tensor) {
  const n = options.batchSize;
  if (tf.getBackend() !== 'webgpu' || !(optimizer instanceof FlatAdam) || data.count < n || !backendSettings().replaySteps) return null;
  const x = tf.zeros([n, ...inputShapeOf(model)]);
  // Of the right shapes and dtypes; each step writes its own values.
  const targets = targetsOf(options.head, data, (b) => b, n);
  const keys = TARGET_KEYS.filter((k) => targets[k]);
  const slots = [x, ...keys.map((k) => targets[k]!)];
  const steps = new ReplayedSteps(slots, () => optimizer.minimize(() => meanLoss(options.head, targets, forward(x)), true)!);
  const scratch = new Float32Array(x.size);
  return {
    get replays() {
      return steps.replays;
    },
    submit: (rows: Int32Array) => {
      const index = (b: number) => rows[b]!;
      const v = targetValues(options.head, data, index, n);
      return steps.submit([batchValues(data, index, n, scratch), ...keys.map((k) => v[k]!)]);
    },
    dispose: () => {
      steps.dispose();
      tf.dispose(slots);
    },
  };
}

/**
 * Trains `model` in place with mini-batch gradient steps over `data`, in an order drawn from
 * `seed`, minimising the head's loss. A fresh optimizer each call (state is not federated).
 */
export async function trainLocal(model: tf.LayersModel, data: Dataset, options: LocalTrainOptions): Promise<LocalTrainResult> {
  const started = performance.now();
  const dim = data.features.length / data.count;
  const optimizer = makeOptimizer(options.optimizer, options.learningRate);
  const rng = new Random(options.seed);
  const order = Array.from({ length: data.count }, (_, i) => i);
  const scratch = new Float32Array(options.batchSize * dim);
  // On webgpu, batch norm + ReLU pairs as one op each (bn-act.ts); elsewhere model.apply.
  const forward = trainingForward(model);
  let lastEpochLoss = 0;
  let samplesTrained = 0;
  // One batch's step on this thread; with threads, a stepper that may share batches among them.
  const single = async (rows: Int32Array): Promise<number> => {
    const index = (b: number) => rows[b]!;
    const lossT = tf.tidy(() => {
      const x = inputBatch(model, data, index, rows.length, scratch);
      const t = targetsOf(options.head, data, index, rows.length);
      return optimizer.minimize(() => meanLoss(options.head, t, forward(x)), true)!;
    });
    const loss = (await lossT.data())[0]!;
    lossT.dispose();
    return loss;
  };
  let stepper: Stepper | null = null;
  let replayedSteps = 0;
  const replayed = options.parallel && options.parallel.threads.threads > 1 ? null : replayedBatches(model, data, options, optimizer, forward);
  // A replayed batch's loss is read once the next batch is issued: the GPU runs one while the
  // next is prepared.
  let pending: { loss: Promise<number>; n: number } | null = null;
  let lossSumEpoch = 0;
  let epochSamples = 0;
  const settle = async () => {
    if (!pending) return;
    const { loss: lossP, n } = pending;
    pending = null;
    const loss = await lossP;
    lossSumEpoch += loss * n;
    epochSamples += n;
    samplesTrained += n;
    await options.onProgress?.(samplesTrained, loss);
  };
  try {
    const par = options.parallel;
    stepper = par && par.threads.threads > 1
      ? await par.threads.stepper({ model, topology: par.topology, data, head: options.head, optimizer, forward, batchSize: options.batchSize, single })
      : { step: single, end: async () => {} };
    for (let epoch = 0; epoch < options.epochs; epoch++) {
      rng.shuffle(order);
      lossSumEpoch = 0;
      epochSamples = 0;
      for (let start = 0; start < data.count; start += options.batchSize) {
        if (options.signal?.aborted) throw new TrainingAbortedError();
        const n = Math.min(options.batchSize, data.count - start);
        const rows = Int32Array.from(order.slice(start, start + n));
        const issued = replayed && n === options.batchSize ? await replayed.submit(rows) : { loss: Promise.resolve(await stepper.step(rows)) };
        await settle();
        pending = { loss: issued.loss, n };
        // Let heartbeats and cancellations through between batches.
        await new Promise((r) => setImmediate(r));
      }
      await settle();
      lastEpochLoss = lossSumEpoch / Math.max(epochSamples, 1);
    }
  } finally {
    // A step still in flight finishes before what it uses is freed.
    await (pending as { loss: Promise<number> } | null)?.loss.catch(() => {});
    replayedSteps = replayed?.replays ?? 0;
    replayed?.dispose();
    optimizer.dispose();
    await stepper?.end();
  }
  return { loss: lastEpochLoss, samplesTrained, seconds: (performance.now() - started) / 1000, replayedSteps };
}

/** Loss and the task metric of a model on a dataset. */
export interface Evaluation {
  loss: number;
  /** Classes: accuracy. Keypoints: PCK@0.2. */
  accuracy: number;
  count: number;
  /** Keypoints: mean distance of labelled keypoints from the truth, in image widths. */
  meanError?: number;
  /** Work steps (a head with `steps`): F1 of the out-of-order flag; `accuracy` is the step's. */
  orderF1?: number;
}

/** Evaluates `model` in batches (inference mode). */
export async function evaluate(model: tf.LayersModel, data: Dataset, head: Head, batchSize = 64): Promise<Evaluation> {
  let loss = 0, weight = 0;
  const counts = [0, 0, 0, 0, 0];
  for (let start = 0; start < data.count; start += batchSize) {
    const n = Math.min(batchSize, data.count - start);
    const [l, w, m] = tf.tidy(() => {
      const index = (b: number) => start + b;
      const p = model.predict(inputBatch(model, data, index, n)) as tf.Tensor;
      const t = targetsOf(head, data, index, n);
      const { sum, weight: wt } = lossSum(head, t, p);
      return [sum, wt, metricCounts(head, t, p)];
    });
    loss += (await l.data())[0]!;
    weight += (await w.data())[0]!;
    (await m.data()).forEach((v, i) => (counts[i]! += v));
    tf.dispose([l, w, m]);
    // A coordinator evaluates between gRPC calls: let them through between batches.
    await new Promise((r) => setImmediate(r));
  }
  const out: Evaluation = { loss: loss / Math.max(weight, 1), accuracy: counts[0]! / Math.max(counts[1]!, 1), count: data.count };
  if (head.kind === 'keypoints') out.meanError = counts[2]! / Math.max(counts[1]!, 1);
  if (head.kind === 'classes' && head.steps) out.orderF1 = (2 * counts[2]!) / Math.max(2 * counts[2]! + counts[3]! + counts[4]!, 1);
  return out;
}

/**
 * Gradient of the validation loss at the model's current weights, flat in the order of
 * `model.weights` (zeros for non-trainable weights), accumulated over batches. The first-order
 * loss change of an update d is gradient . d, which is additive over the members of a group: it
 * lets the coordinator score groups' mean updates in a way that sums over members (src/scoring).
 */
export async function lossGradient(model: tf.LayersModel, data: Dataset, head: Head, batchSize = 64): Promise<Float32Array> {
  const trainable = new Set(model.trainableWeights.map((w) => w.name));
  const sizes = model.weights.map((w) => w.shape.reduce<number>((a, b) => a * (b ?? 1), 1));
  const out = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  // The mean loss is sum / total weight; each batch adds its sum's gradient over that total.
  let total = data.count;
  if (head.kind === 'keypoints') {
    total = 0;
    for (let i = 2; i < (data.keypoints?.length ?? 0); i += 3) if (data.keypoints![i]! > 0) total += 2;
  }
  for (let start = 0; start < data.count; start += batchSize) {
    const n = Math.min(batchSize, data.count - start);
    const { grads, value } = tf.tidy(() => {
      const index = (b: number) => start + b;
      const x = inputBatch(model, data, index, n);
      const t = targetsOf(head, data, index, n);
      return tf.variableGrads(() => tf.div<tf.Scalar>(lossSum(head, t, model.apply(x, { training: false }) as tf.Tensor).sum, Math.max(total, 1)));
    });
    let off = 0;
    for (let i = 0; i < model.weights.length; i++) {
      const wt = model.weights[i]!;
      const g = trainable.has(wt.name) ? grads[wt.originalName ?? wt.name] ?? grads[wt.name] : undefined;
      if (g) {
        const gv = (await g.data()) as Float32Array;
        for (let k = 0; k < gv.length; k++) out[off + k]! += gv[k]!;
      }
      off += sizes[i]!;
    }
    tf.dispose([value, ...Object.values(grads)]);
    await new Promise((r) => setImmediate(r));
  }
  return out;
}
