/**
 * Built-in human-vision tasks: what a sample looks like, how a dataset node generates shards,
 * how the coordinator generates validation data, how raw samples become model input, what the
 * model predicts (its head) and the default model for the task.
 *
 * - `exercise`: exercise recognition from COCO-17 keypoint sequences (classes, accuracy).
 * - `pose`: COCO-17 keypoints from 64 x 64 person images (keypoints, PCK@0.2).
 */
import { type Samples, EXERCISE_CLASSES, SEQ_FRAMES, generateShard, generateValidation, type ExerciseDatasetOptions } from './exercise/generator.js';
import { exerciseFeatures } from './exercise/features.js';
import { NUM_JOINTS } from '../skeleton/index.js';
import { DEFAULT_POSE_SIZE, generatePoseShard, generatePoseValidation } from './pose/generator.js';
import { InvalidFieldError } from '../errors.js';
import type { Head, ModelSpec } from '../model/index.js';

/** A built-in task. */
export interface TaskDefinition {
  name: string;
  description: string;
  /** Shape of one raw sample. */
  sampleShape: number[];
  /** Class names of the samples' labels (for `pose`: the movement shown, not predicted). */
  classes: readonly string[];
  /** Keypoints a sample is labelled with (0: none). */
  keypoints: number;
  /** Raw samples to model input (same count, `inputShape` each). */
  features(x: Float32Array, count: number): Float32Array;
  /** Shape of one model input. */
  inputShape: number[];
  head: Head;
  /** The name of the head's metric, as reports print it. */
  metricName: string;
  /**
   * How much a round of this task counts in contribution scores against other tasks' rounds
   * (harder tasks weigh more): the default of a job's --task-weight.
   */
  difficulty: number;
  generateShard(options: ExerciseDatasetOptions, index: number): Samples;
  generateValidation(seed: string, count: number): Samples;
  defaultModel: ModelSpec;
  /** Local learning rate of a job that names none. */
  defaultLearningRate: number;
}

const exercise: TaskDefinition = {
  name: 'exercise',
  description: 'exercise recognition from COCO-17 keypoint sequences (T x 17 x 3)',
  sampleShape: [SEQ_FRAMES, NUM_JOINTS, 3],
  classes: EXERCISE_CLASSES,
  keypoints: 0,
  features: exerciseFeatures,
  inputShape: [SEQ_FRAMES * NUM_JOINTS * 3],
  head: { kind: 'classes', numClasses: EXERCISE_CLASSES.length },
  metricName: 'acc',
  difficulty: 1,
  generateShard,
  generateValidation,
  defaultModel: { family: 'mlp', hidden: [128, 64], dropout: 0.1 },
  defaultLearningRate: 0.002,
};

const pose: TaskDefinition = {
  name: 'pose',
  description: `COCO-17 keypoints from ${DEFAULT_POSE_SIZE} x ${DEFAULT_POSE_SIZE} rendered person images`,
  sampleShape: [DEFAULT_POSE_SIZE, DEFAULT_POSE_SIZE, 3],
  classes: EXERCISE_CLASSES,
  keypoints: NUM_JOINTS,
  features: (x) => x,
  inputShape: [DEFAULT_POSE_SIZE, DEFAULT_POSE_SIZE, 3],
  head: { kind: 'keypoints' },
  metricName: 'PCK@0.2',
  // Dense per-pixel vision on images: several times the compute and data of a sequence classifier.
  difficulty: 3,
  generateShard: (options, index) => generatePoseShard(options, index),
  generateValidation: (seed, count) => generatePoseValidation(seed, count),
  defaultModel: { family: 'cnn', widths: [16, 32, 64, 96], pool: 'flatten' },
  // bench:pose, 20 passes as 4 rounds x 5 local epochs: at 0.002 the federation reached 0.80 of
  // the centralised PCK, at 0.004 0.95 (docs/performance.md).
  defaultLearningRate: 0.004,
};

const TASKS: ReadonlyMap<string, TaskDefinition> = new Map([[exercise.name, exercise], [pose.name, pose]]);

/** The task called `name`, or a clear error naming the known ones. */
export function getTask(name: string): TaskDefinition {
  const t = TASKS.get(name);
  if (!t) throw new InvalidFieldError('task', `one of ${[...TASKS.keys()].join(', ')}`, JSON.stringify(name));
  return t;
}

export { decodeShard, encodeShard } from './shard-file.js';
export { imageFloats, renderPerson, siteStyle } from './pose/render.js';
export { importCoco } from './pose/coco.js';
export { type Samples } from './exercise/generator.js';
