/**
 * What a model predicts, and how it is scored: class probabilities (softmax cross-entropy,
 * accuracy) or COCO keypoints (sigmoid x, y in image units; squared error over labelled
 * keypoints; PCK@0.2 and mean keypoint error).
 *
 * PCK@0.2 counts a labelled keypoint as found when it lies within 0.2 of the torso diameter
 * (left shoulder to right hip, the PCK of the LSP benchmark) of the truth.
 */
import * as tf from '@tensorflow/tfjs';
import { KP, NUM_JOINTS } from '../skeleton/index.js';
import { headUnits, type Head } from './contract.js';

export { headUnits, type Head };


/** A batch's targets as tensors. */
export interface Targets {
  labels?: tf.Tensor1D;
  /** [n, 34] x, y of each keypoint, and [n, 34] 1 where the keypoint is labelled. */
  coords?: tf.Tensor2D;
  mask?: tf.Tensor2D;
  /** [n] torso diameters (PCK's yardstick). */
  torso?: tf.Tensor1D;
}

/** The targets' values of `n` rows picked by `index`, as {@link targetsOf} makes them into tensors. */
export function targetValues(head: Head, rows: { labels: Uint8Array; keypoints?: Float32Array }, index: (b: number) => number, n: number): { labels?: Int32Array; coords?: Float32Array; mask?: Float32Array; torso?: Float32Array } {
  if (head.kind === 'classes') return { labels: Int32Array.from({ length: n }, (_, b) => rows.labels[index(b)]!) };
  if (!rows.keypoints) throw new RangeError('keypoint head: expected samples with keypoints');
  const coords = new Float32Array(n * NUM_JOINTS * 2), mask = new Float32Array(n * NUM_JOINTS * 2), torso = new Float32Array(n);
  for (let b = 0; b < n; b++) {
    const kp = rows.keypoints.subarray(index(b) * NUM_JOINTS * 3, (index(b) + 1) * NUM_JOINTS * 3);
    for (let k = 0; k < NUM_JOINTS; k++) {
      coords[(b * NUM_JOINTS + k) * 2] = kp[k * 3]!;
      coords[(b * NUM_JOINTS + k) * 2 + 1] = kp[k * 3 + 1]!;
      const m = kp[k * 3 + 2]! > 0 ? 1 : 0;
      mask[(b * NUM_JOINTS + k) * 2] = m;
      mask[(b * NUM_JOINTS + k) * 2 + 1] = m;
    }
    const [sx, sy, hx, hy] = [kp[KP.left_shoulder * 3]!, kp[KP.left_shoulder * 3 + 1]!, kp[KP.right_hip * 3]!, kp[KP.right_hip * 3 + 1]!];
    torso[b] = Math.max(Math.hypot(sx - hx, sy - hy), 1e-3);
  }
  return { coords, mask, torso };
}

/** Builds the targets of `n` rows picked by `index` (labels, or 17 x 3 keypoints a row). */
export function targetsOf(head: Head, rows: { labels: Uint8Array; keypoints?: Float32Array }, index: (b: number) => number, n: number): Targets {
  const v = targetValues(head, rows, index, n);
  if (v.labels) return { labels: tf.tensor1d(v.labels, 'int32') };
  return { coords: tf.tensor2d(v.coords!, [n, NUM_JOINTS * 2]), mask: tf.tensor2d(v.mask!, [n, NUM_JOINTS * 2]), torso: tf.tensor1d(v.torso!) };
}

/**
 * The model ends in softmax (so the exported model outputs probabilities); the loss wants logits,
 * and log(p) is a valid logit vector for softmax, kept finite by a floor.
 */
function logitsOf(probs: tf.Tensor): tf.Tensor {
  return tf.log(tf.maximum(probs, 1e-7));
}

/**
 * The batch's summed loss and its weight (samples for classes, labelled coordinates for
 * keypoints); the mean loss is their ratio.
 */
export function lossSum(head: Head, t: Targets, p: tf.Tensor): { sum: tf.Scalar; weight: tf.Scalar } {
  if (head.kind === 'classes') {
    const y = tf.oneHot(t.labels!, head.numClasses);
    return { sum: tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(y, logitsOf(p), undefined, 0, tf.Reduction.SUM), weight: tf.scalar(t.labels!.shape[0]) };
  }
  return { sum: tf.sum(tf.mul(t.mask!, tf.squaredDifference(p, t.coords!))), weight: tf.sum(t.mask!) };
}

/** The batch's mean loss (what training minimises). */
export function meanLoss(head: Head, t: Targets, p: tf.Tensor): tf.Scalar {
  const { sum, weight } = lossSum(head, t, p);
  return tf.div(sum, tf.maximum(weight, 1));
}

/**
 * The batch's metric counts: classes: [correct, samples]; steps: [step right, samples, flag
 * true positives, false positives, false negatives]; keypoints: [found within PCK@0.2,
 * labelled keypoints, summed distance of labelled keypoints].
 */
export function metricCounts(head: Head, t: Targets, p: tf.Tensor): tf.Tensor1D {
  if (head.kind === 'classes' && head.steps) {
    const pred = tf.cast(tf.argMax(p, 1), 'int32'), truth = tf.cast(t.labels!, 'int32');
    const steps = tf.scalar(head.steps, 'int32');
    const count = (b: tf.Tensor) => tf.sum(tf.cast(b, 'float32'));
    const pf = tf.greaterEqual(pred, steps), tf_ = tf.greaterEqual(truth, steps);
    return tf.stack([
      count(tf.equal(tf.mod(pred, steps), tf.mod(truth, steps))), tf.scalar(t.labels!.shape[0]),
      count(tf.logicalAnd(pf, tf_)), count(tf.logicalAnd(pf, tf.logicalNot(tf_))), count(tf.logicalAnd(tf.logicalNot(pf), tf_)),
    ]) as tf.Tensor1D;
  }
  if (head.kind === 'classes') {
    return tf.stack([tf.sum(tf.cast(tf.equal(tf.argMax(p, 1), t.labels!), 'float32')), tf.scalar(t.labels!.shape[0])]) as tf.Tensor1D;
  }
  const n = p.shape[0];
  const d2 = tf.sum(tf.squaredDifference(p, t.coords!).reshape([n, NUM_JOINTS, 2]), 2);
  const dist = tf.sqrt(d2);
  const labelled = tf.slice(t.mask!.reshape([n, NUM_JOINTS, 2]), [0, 0, 0], [n, NUM_JOINTS, 1]).reshape([n, NUM_JOINTS]);
  const found = tf.mul(tf.cast(tf.lessEqual(dist, tf.mul(t.torso!.reshape([n, 1]), 0.2)), 'float32'), labelled);
  return tf.stack([tf.sum(found), tf.sum(labelled), tf.sum(tf.mul(dist, labelled))]) as tf.Tensor1D;
}
