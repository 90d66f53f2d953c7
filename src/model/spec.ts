/**
 * Declarative model specs: a built-in family with hyper-parameters, turned into a TF.js Layers
 * model. No submitted code is ever run; a spec is data.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidFieldError } from '../errors.js';

/** A multi-layer perceptron classifier over a flat input. */
export interface MlpSpec {
  family: 'mlp';
  /** Units of each hidden layer (ReLU). */
  hidden: number[];
  /** Dropout after each hidden layer, 0 to < 1. */
  dropout?: number;
  numClasses: number;
}

/** Any model spec the project can build. */
export type ModelSpec = MlpSpec;

/** Largest parameter count a spec may produce (models must fit edge devices). */
export const MAX_PARAMS = 20_000_000;

/** Checks a spec's shape and returns it typed, or throws naming the field. */
export function validateModelSpec(spec: unknown): ModelSpec {
  const s = spec as Partial<MlpSpec>;
  if (typeof spec !== 'object' || spec === null) throw new InvalidFieldError('model', 'an object', typeof spec);
  if (s.family !== 'mlp') throw new InvalidFieldError('model.family', '"mlp"', JSON.stringify(s.family));
  if (!Array.isArray(s.hidden) || s.hidden.length === 0 || s.hidden.some((u) => !Number.isInteger(u) || u < 1 || u > 4096)) {
    throw new InvalidFieldError('model.hidden', 'a non-empty list of integers 1 to 4096', JSON.stringify(s.hidden));
  }
  if (s.dropout !== undefined && !(s.dropout >= 0 && s.dropout < 1)) {
    throw new InvalidFieldError('model.dropout', 'a number in [0, 1)', JSON.stringify(s.dropout));
  }
  if (!Number.isInteger(s.numClasses) || s.numClasses! < 2) {
    throw new InvalidFieldError('model.numClasses', 'an integer >= 2', JSON.stringify(s.numClasses));
  }
  return s as MlpSpec;
}

/** Builds the spec as a Layers model for inputs of `inputShape`, initialised from `seed`. */
export function buildModel(spec: ModelSpec, inputShape: number[], seed = 1): tf.LayersModel {
  const valid = validateModelSpec(spec);
  const layers: tf.layers.Layer[] = [];
  valid.hidden.forEach((units, i) => {
    layers.push(tf.layers.dense({
      units,
      activation: 'relu',
      kernelInitializer: tf.initializers.heNormal({ seed: seed + i }),
      ...(i === 0 ? { inputShape } : {}),
    }));
    if (valid.dropout) layers.push(tf.layers.dropout({ rate: valid.dropout }));
  });
  layers.push(tf.layers.dense({
    units: valid.numClasses,
    activation: 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1000 }),
  }));
  const model = tf.sequential({ layers });
  const params = model.countParams();
  if (params > MAX_PARAMS) throw new InvalidFieldError('model', `at most ${MAX_PARAMS} parameters`, String(params));
  return model;
}

/** The model's topology as TF.js Layers JSON (what trainers rebuild the model from). */
export function topologyJson(model: tf.LayersModel): string {
  return model.toJSON(undefined, true) as string;
}

/** Rebuilds a model from its topology JSON (weights are set separately). */
export async function modelFromTopology(json: string): Promise<tf.LayersModel> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new InvalidFieldError('model.topology_json', 'TF.js Layers JSON', 'text that does not parse');
  }
  return tf.models.modelFromJSON({ modelTopology: parsed as tf.io.ModelJSON['modelTopology'] });
}
