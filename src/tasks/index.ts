/**
 * Built-in human-vision tasks: what a sample looks like, how a dataset node generates shards,
 * how the coordinator generates validation data, how raw samples become model input, and the
 * default model for the task.
 */
import type { Samples } from './exercise/generator.js';
import {
  EXERCISE_CLASSES, NUM_CLASSES, SEQ_FRAMES, generateShard, generateValidation, type ExerciseDatasetOptions,
} from './exercise/generator.js';
import { exerciseFeatures } from './exercise/features.js';
import { NUM_JOINTS } from './exercise/skeleton.js';
import { InvalidFieldError } from '../errors.js';
import type { ModelSpec } from '../model/spec.js';

/** A built-in task. */
export interface TaskDefinition {
  name: string;
  description: string;
  /** Shape of one raw sample. */
  sampleShape: number[];
  classes: readonly string[];
  /** Raw samples to model input (same count, `inputShape` each). */
  features(x: Float32Array, count: number): Float32Array;
  /** Shape of one model input. */
  inputShape: number[];
  generateShard(options: ExerciseDatasetOptions, index: number): Samples;
  generateValidation(seed: string, count: number): Samples;
  defaultModel: ModelSpec;
}

const exercise: TaskDefinition = {
  name: 'exercise',
  description: 'exercise recognition from COCO-17 keypoint sequences (T x 17 x 3)',
  sampleShape: [SEQ_FRAMES, NUM_JOINTS, 3],
  classes: EXERCISE_CLASSES,
  features: exerciseFeatures,
  inputShape: [SEQ_FRAMES * NUM_JOINTS * 3],
  generateShard,
  generateValidation,
  defaultModel: { family: 'mlp', hidden: [128, 64], dropout: 0.1, numClasses: NUM_CLASSES },
};

const TASKS: ReadonlyMap<string, TaskDefinition> = new Map([[exercise.name, exercise]]);

/** The task called `name`, or a clear error naming the known ones. */
export function getTask(name: string): TaskDefinition {
  const t = TASKS.get(name);
  if (!t) throw new InvalidFieldError('task', `one of ${[...TASKS.keys()].join(', ')}`, JSON.stringify(name));
  return t;
}
