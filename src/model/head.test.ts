import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';
import { metricCounts, meanLoss, targetsOf, type Head } from './head.js';
import { KP, NUM_JOINTS } from '../skeleton/index.js';

describe('keypoint head', () => {
  const head: Head = { kind: 'keypoints' };
  // One sample: every keypoint at (0.5, 0.5) except the torso's ends, 0.25 apart (torso 0.25,
  // so PCK@0.2 allows 0.05); keypoint 0 is not labelled.
  const kp = new Float32Array(NUM_JOINTS * 3);
  for (let k = 0; k < NUM_JOINTS; k++) kp.set([0.5, 0.5, k === 0 ? 0 : 2], k * 3);
  kp.set([0.5, 0.25, 2], KP.left_shoulder * 3);
  kp.set([0.5, 0.5, 2], KP.right_hip * 3);

  it('counts PCK@0.2 against the torso, ignores unlabelled keypoints, and averages distances', async () => {
    await selectBackend('cpu');
    const pred = new Float32Array(NUM_JOINTS * 2);
    for (let k = 0; k < NUM_JOINTS; k++) pred.set([kp[k * 3]!, kp[k * 3 + 1]!], k * 2);
    pred[0] = 0.9; // unlabelled: any error is ignored
    pred[KP.left_wrist * 2] = 0.5 + 0.049; // within 0.05
    pred[KP.right_wrist * 2] = 0.5 + 0.051; // just outside
    pred[KP.left_ankle * 2 + 1] = 0.5 - 0.3; // far off
    const [found, labelled, dist] = tf.tidy(() => metricCounts(head, targetsOf(head, { labels: new Uint8Array(1), keypoints: kp }, () => 0, 1), tf.tensor2d(pred, [1, 34])).arraySync());
    expect(labelled).toBe(16);
    expect(found).toBe(14);
    expect(dist).toBeCloseTo(0.049 + 0.051 + 0.3, 5);
  });

  it('takes the loss over labelled coordinates only', async () => {
    await selectBackend('cpu');
    const pred = new Float32Array(NUM_JOINTS * 2).fill(0.5);
    pred[0] = 0; // keypoint 0: unlabelled, not counted
    pred[KP.left_shoulder * 2 + 1] = 0.25 + 0.1;
    const loss = tf.tidy(() => meanLoss(head, targetsOf(head, { labels: new Uint8Array(1), keypoints: kp }, () => 0, 1), tf.tensor2d(pred, [1, 34])).arraySync());
    expect(loss).toBeCloseTo(0.01 / 32, 7);
  });

  it('refuses samples without keypoints', () => {
    expect(() => targetsOf(head, { labels: new Uint8Array(1) }, () => 0, 1)).toThrow('keypoint head: expected samples with keypoints');
  });
});

describe('work-step head', () => {
  it('scores the step whatever the flag, and counts the out-of-order flag\'s true and false positives and misses', async () => {
    await selectBackend('cpu');
    const head: Head = { kind: 'classes', numClasses: 6, steps: 3 };
    // Classes 0-2: steps in order; 3-5: the same steps out of order.
    const labels = Uint8Array.from([0, 1, 2, 3, 4, 5, 0, 4]);
    const predicted = [1, 4, 2, 3, 1, 2, 3, 4];
    const p = tf.oneHot(tf.tensor1d(predicted, 'int32'), 6);
    const counts = tf.tidy(() => metricCounts(head, targetsOf(head, { labels }, (b) => b, labels.length), p).arraySync());
    // Steps (class mod 3): sample 0 is wrong (1 for 0); the others are right, flag or not.
    expect(counts[0]).toBe(7);
    expect(counts[1]).toBe(8);
    // Flags (label >= 3 vs prediction >= 3): true positives 3 and 7; false positives 1 and 6;
    // misses 4 and 5.
    expect(counts.slice(2)).toEqual([2, 2, 2]);
  });
});
