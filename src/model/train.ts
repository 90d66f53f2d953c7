/**
 * Local training and evaluation of a classifier on one process's backend. Training checks its
 * AbortSignal between batches, so a cancelled round stops within one batch.
 */
import * as tf from '@tensorflow/tfjs';
import { Random } from '../util/random.js';

/** Labelled model input: `count` rows of `features / count` floats. */
export interface Dataset {
  count: number;
  features: Float32Array;
  labels: Uint8Array;
}

/** Local training settings of one round. */
export interface LocalTrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  optimizer: 'sgd' | 'adam';
  numClasses: number;
  seed: number;
  signal?: AbortSignal;
  /** Called after each batch with samples done so far. */
  onProgress?: (samplesDone: number, loss: number) => void | Promise<void>;
}

/** What a round of local training did. */
export interface LocalTrainResult {
  /** Mean training loss over the last epoch. */
  loss: number;
  samplesTrained: number;
  seconds: number;
}

function makeOptimizer(name: 'sgd' | 'adam', lr: number): tf.Optimizer {
  return name === 'adam' ? tf.train.adam(lr) : tf.train.momentum(lr, 0.9);
}

/** Thrown when training stops because its signal aborted. */
export class TrainingAbortedError extends Error {
  constructor() {
    super('training aborted');
    this.name = 'TrainingAbortedError';
  }
}

/**
 * Trains `model` in place with mini-batch gradient steps over `data`, in an order drawn from
 * `seed`. Categorical cross-entropy; a fresh optimizer each call (state is not federated).
 */
export async function trainLocal(model: tf.LayersModel, data: Dataset, options: LocalTrainOptions): Promise<LocalTrainResult> {
  const started = performance.now();
  const dim = data.features.length / data.count;
  const optimizer = makeOptimizer(options.optimizer, options.learningRate);
  const rng = new Random(options.seed);
  const order = Array.from({ length: data.count }, (_, i) => i);
  const xb = new Float32Array(options.batchSize * dim);
  const yb = new Int32Array(options.batchSize);
  let lastEpochLoss = 0;
  let samplesTrained = 0;
  try {
    for (let epoch = 0; epoch < options.epochs; epoch++) {
      rng.shuffle(order);
      let lossSum = 0;
      let epochSamples = 0;
      for (let start = 0; start < data.count; start += options.batchSize) {
        if (options.signal?.aborted) throw new TrainingAbortedError();
        const n = Math.min(options.batchSize, data.count - start);
        for (let b = 0; b < n; b++) {
          const i = order[start + b]!;
          xb.set(data.features.subarray(i * dim, (i + 1) * dim), b * dim);
          yb[b] = data.labels[i]!;
        }
        const lossT = tf.tidy(() => {
          const x = tf.tensor2d(xb.subarray(0, n * dim), [n, dim]);
          const y = tf.oneHot(tf.tensor1d(yb.subarray(0, n), 'int32'), options.numClasses);
          return optimizer.minimize(() => {
            const p = model.apply(x, { training: true }) as tf.Tensor;
            return tf.losses.softmaxCrossEntropy(y, logitsOf(p));
          }, true)!;
        });
        const loss = (await lossT.data())[0]!;
        lossT.dispose();
        lossSum += loss * n;
        epochSamples += n;
        samplesTrained += n;
        await options.onProgress?.(samplesTrained, loss);
        // Let heartbeats and cancellations through between batches.
        await new Promise((r) => setImmediate(r));
      }
      lastEpochLoss = lossSum / Math.max(epochSamples, 1);
    }
  } finally {
    optimizer.dispose();
  }
  return { loss: lastEpochLoss, samplesTrained, seconds: (performance.now() - started) / 1000 };
}

/**
 * The model ends in softmax (so the exported model outputs probabilities); the loss wants logits,
 * and log(p) is a valid logit vector for softmax, kept finite by a floor.
 */
function logitsOf(probs: tf.Tensor): tf.Tensor {
  return tf.log(tf.maximum(probs, 1e-7));
}

/** Loss and accuracy of a model on a dataset. */
export interface Evaluation {
  loss: number;
  accuracy: number;
  count: number;
}

/** Evaluates `model` in batches (inference mode). */
export async function evaluate(model: tf.LayersModel, data: Dataset, numClasses: number, batchSize = 512): Promise<Evaluation> {
  const dim = data.features.length / data.count;
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < data.count; start += batchSize) {
    const n = Math.min(batchSize, data.count - start);
    const [l, c] = tf.tidy(() => {
      const x = tf.tensor2d(data.features.subarray(start * dim, (start + n) * dim), [n, dim]);
      const labels = tf.tensor1d(Int32Array.from(data.labels.subarray(start, start + n)), 'int32');
      const p = model.predict(x) as tf.Tensor;
      const y = tf.oneHot(labels, numClasses);
      const loss = tf.losses.softmaxCrossEntropy(y, logitsOf(p), undefined, 0, tf.Reduction.SUM);
      const hits = tf.equal(tf.argMax(p, 1), labels).sum();
      return [loss, hits];
    });
    lossSum += (await l!.data())[0]!;
    correct += (await c!.data())[0]!;
    tf.dispose([l!, c!]);
  }
  return { loss: lossSum / data.count, accuracy: correct / data.count, count: data.count };
}

/**
 * Gradient of the validation loss at the model's current weights, flat in the order of
 * `model.weights` (zeros for non-trainable weights). The first-order loss change of an update d
 * is gradient . d, which is additive over the members of a group: it lets the coordinator score
 * groups' mean updates in a way that sums over members (src/scoring).
 */
export async function lossGradient(model: tf.LayersModel, data: Dataset, numClasses: number): Promise<Float32Array> {
  const dim = data.features.length / data.count;
  const trainable = new Set(model.trainableWeights.map((w) => w.name));
  const { grads, value } = tf.tidy(() => {
    const x = tf.tensor2d(data.features, [data.count, dim]);
    const y = tf.oneHot(tf.tensor1d(Int32Array.from(data.labels), 'int32'), numClasses);
    return tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, logitsOf(model.predict(x) as tf.Tensor)) as tf.Scalar);
  });
  const sizes = model.weights.map((w) => w.shape.reduce<number>((a, b) => a * (b ?? 1), 1));
  const out = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let off = 0;
  for (let i = 0; i < model.weights.length; i++) {
    const w = model.weights[i]!;
    const g = trainable.has(w.name) ? grads[w.originalName ?? w.name] ?? grads[w.name] : undefined;
    if (g) out.set((await g.data()) as Float32Array, off);
    off += sizes[i]!;
  }
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}
