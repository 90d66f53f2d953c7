/**
 * A model's weights as one flat float32 vector (the order of `model.weights`), the form in which
 * models and updates travel and are aggregated.
 */
import * as tf from '@tensorflow/tfjs';
import { UpdateLengthError } from '../errors.js';

/** Number of floats in the model's flat vector. */
export function paramCount(model: tf.LayersModel): number {
  return model.weights.reduce((n, w) => n + sizeOf(w.shape), 0);
}

function sizeOf(shape: readonly (number | null)[]): number {
  return shape.reduce<number>((a, b) => a * (b ?? 1), 1);
}

/** Copies all weights of `model` into one Float32Array. */
export async function getFlatParams(model: tf.LayersModel): Promise<Float32Array> {
  const out = new Float32Array(paramCount(model));
  let off = 0;
  for (const w of model.weights) {
    const data = (await w.read().data()) as Float32Array;
    out.set(data, off);
    off += data.length;
  }
  return out;
}

/** Sets every weight of `model` from a flat vector. */
export function setFlatParams(model: tf.LayersModel, flat: Float32Array): void {
  const n = paramCount(model);
  if (flat.length !== n) throw new UpdateLengthError(n, flat.length);
  let off = 0;
  const tensors = model.weights.map((w) => {
    const size = sizeOf(w.shape);
    const t = tf.tensor(flat.subarray(off, off + size), w.shape as number[], 'float32');
    off += size;
    return t;
  });
  model.setWeights(tensors);
  tf.dispose(tensors);
}

/** `local - global` into a new vector, scaled down to L2 norm `clip` when it is longer (0: no clip). */
export function clippedDelta(local: Float32Array, global: Float32Array, clip: number): { delta: Float32Array; norm: number } {
  if (local.length !== global.length) throw new UpdateLengthError(global.length, local.length);
  const delta = new Float32Array(local.length);
  let sq = 0;
  for (let i = 0; i < delta.length; i++) {
    const d = local[i]! - global[i]!;
    delta[i] = d;
    sq += d * d;
  }
  const norm = Math.sqrt(sq);
  if (clip > 0 && norm > clip) {
    const k = clip / norm;
    for (let i = 0; i < delta.length; i++) delta[i]! *= k;
  }
  return { delta, norm };
}
