/**
 * Built-in human-vision tasks: what a sample looks like, how a dataset node generates shards,
 * how the coordinator generates validation data, how raw samples become model input, what the
 * model predicts (its head) and the default model for the task.
 *
 * - `exercise`: exercise recognition from COCO-17 keypoint sequences (classes, accuracy).
 * - `pose`: COCO-17 keypoints from 64 x 64 person images (keypoints, PCK@0.2).
 * - `worksteps`: the step of an assembly routine a keypoint window shows, and whether it came
 *   out of order (classes; step accuracy and the out-of-order flag's F1).
 */
import { type Samples, EXERCISE_CLASSES, FPS, SEQ_FRAMES, generateShard, generateValidation, type ExerciseDatasetOptions } from './exercise/generator.js';
import { exerciseFeatures } from './exercise/features.js';
import { COCO_KEYPOINTS, NUM_JOINTS } from '../skeleton/index.js';
import { DEFAULT_POSE_SIZE, generatePoseShard, generatePoseValidation } from './pose/generator.js';
import { NUM_STEPS, OUT_OF_ORDER_SHARE, WORK_STEPS, WORKSTEP_CLASSES, generateWorkShard, generateWorkValidation } from './worksteps/generator.js';
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
  /** How an app feeds the model and reads its output (the model card says it). */
  usage: TaskUsage;
}

/** What a model card tells an app: the input, the output, and the steps from raw data to input. */
export interface TaskUsage {
  input: { shape: number[]; layout: string; values: string };
  output: { shape: number[]; layout: string; values: string };
  /** From raw data (what a camera or a pose detector gives) to the model's input, in order. */
  preprocessing: string[];
  /** What a raw sample is, as the card's examples give it. */
  raw: string;
}

const COCO_ORDER = `COCO-17 order: ${COCO_KEYPOINTS.join(', ')}`;

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
  usage: {
    input: {
      shape: [1, SEQ_FRAMES * NUM_JOINTS * 3],
      layout: `${SEQ_FRAMES} frames at ${FPS} frames a second, oldest first; in each frame the 17 keypoints in ${COCO_ORDER}; each keypoint x, y, visible (flattened in that order)`,
      values: 'x and y normalised as below (about -3 to 3); visible 1, or 0 with x = y = 0 for a keypoint not seen',
    },
    output: { shape: [1, EXERCISE_CLASSES.length], layout: `one probability a class, in order: ${EXERCISE_CLASSES.join(', ')}`, values: 'softmax probabilities (they sum to 1)' },
    preprocessing: [
      `Take ${SEQ_FRAMES} consecutive frames of 17 COCO keypoints (x, y in image units: 0 to 1 across the width and down the height; a visibility of 0 for a keypoint not seen), about ${FPS} frames a second.`,
      'Centre: subtract the mean over frames of the hip midpoint (the mean of left_hip and right_hip), using frames where both hips are seen; with none, the mean of all seen keypoints.',
      'Scale: divide by the median over frames of the torso length (from the hip midpoint to the shoulder midpoint), using frames where both pairs are seen; with none, by 0.1; never by less than 0.001.',
      'Write each seen keypoint as (x, y, 1) and each unseen one as (0, 0, 0).',
    ],
    raw: `${SEQ_FRAMES} x 17 x (x, y, COCO visibility 0/1/2), x and y in image units`,
  },
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
  usage: {
    input: {
      shape: [1, DEFAULT_POSE_SIZE, DEFAULT_POSE_SIZE, 3],
      layout: `one ${DEFAULT_POSE_SIZE} x ${DEFAULT_POSE_SIZE} RGB image, rows top to bottom, pixels left to right, channels last`,
      values: 'red, green, blue as floats from 0 to 1',
    },
    output: { shape: [1, NUM_JOINTS * 2], layout: `x, y of each keypoint in ${COCO_ORDER}`, values: 'image units: x from 0 (left edge) to 1 (right edge), y from 0 (top) to 1 (bottom)' },
    preprocessing: [
      'The model saw images with one person filling most of the frame: crop the person (a detector\'s box, made square by widening its shorter side) and resize the crop to 64 x 64.',
      'Divide each 8-bit channel by 255.',
      'Keypoints come back in the crop\'s units: multiply by the crop\'s side and add its corner for the original image.',
    ],
    raw: `the model's input itself (a ${DEFAULT_POSE_SIZE} x ${DEFAULT_POSE_SIZE} x 3 image)`,
  },
};

const worksteps: TaskDefinition = {
  name: 'worksteps',
  description: `assembly work steps (${WORK_STEPS.join(', ')}) and out-of-order steps from COCO-17 keypoint windows (T x 17 x 3)`,
  sampleShape: [SEQ_FRAMES, NUM_JOINTS, 3],
  classes: WORKSTEP_CLASSES,
  keypoints: 0,
  features: exerciseFeatures,
  inputShape: [SEQ_FRAMES * NUM_JOINTS * 3],
  head: { kind: 'classes', numClasses: 2 * NUM_STEPS, steps: NUM_STEPS },
  metricName: 'step acc',
  // A sequence classifier like exercise, but the flag needs the order of two steps.
  difficulty: 1.5,
  generateShard: generateWorkShard,
  generateValidation: generateWorkValidation,
  defaultModel: { family: 'mlp', hidden: [128, 64], dropout: 0.1 },
  // Adam at 0.002 (exercise's) often stalls at the class prior on this task; 0.001 does not.
  defaultLearningRate: 0.001,
  usage: {
    input: { ...exercise.usage.input, shape: [1, SEQ_FRAMES * NUM_JOINTS * 3] },
    output: {
      shape: [1, 2 * NUM_STEPS],
      layout: `one probability a class, in order: ${WORKSTEP_CLASSES.join(', ')}`,
      values: `softmax probabilities (they sum to 1); the step is the largest class's step, and it is out of order when that class is one of the last ${NUM_STEPS}`,
    },
    preprocessing: [
      `Take the last ${SEQ_FRAMES} frames (${SEQ_FRAMES / FPS} s at ${FPS} frames a second) of the worker's 17 COCO keypoints, ending at the frame to label; the model saw windows that end inside a step and show the step before it.`,
      ...exercise.usage.preprocessing.slice(1),
      `Out of order means the step before the current one is not its predecessor in the routine ${WORK_STEPS.join(' > ')} > ${WORK_STEPS[0]}; ${OUT_OF_ORDER_SHARE * 100}% of the validation windows are.`,
    ],
    raw: exercise.usage.raw,
  },
};

const TASKS: ReadonlyMap<string, TaskDefinition> = new Map([[exercise.name, exercise], [pose.name, pose], [worksteps.name, worksteps]]);

/** The built-in tasks' names. */
export const TASK_NAMES: readonly string[] = [...TASKS.keys()];

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
