/**
 * Gradients of plain and fused convolutions on the active backend, for checking the project's
 * conv backprop kernels against the cpu backend's stock ones: by conv-grad.test.ts here, and by
 * `npm run bench:train -- --check` on a GPU.
 */
import * as tf from '@tensorflow/tfjs';
import { Random } from '../util/random.js';

export interface ConvCase { name: string; x: number[]; f: number[]; strides: number | [number, number]; pad: 'same' | 'valid'; depthwise?: boolean; fused?: boolean }

export const CONV_CASES: readonly ConvCase[] = [
  { name: '3x3 stride 1 same', x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3x3 stride 2 same', x: [2, 9, 8, 3], f: [3, 3, 3, 5], strides: 2, pad: 'same' },
  { name: '5x3 stride (2,1) valid', x: [1, 11, 7, 2], f: [5, 3, 2, 3], strides: [2, 1], pad: 'valid' },
  { name: '1x1 pointwise', x: [3, 6, 6, 8], f: [1, 1, 8, 6], strides: 1, pad: 'same' },
  { name: 'fused conv with bias and relu (what Layers uses)', x: [2, 8, 8, 3], f: [3, 3, 3, 4], strides: 2, pad: 'same', fused: true },
  { name: 'fused depthwise with bias and relu', x: [2, 8, 8, 4], f: [3, 3, 4, 1], strides: 1, pad: 'same', depthwise: true, fused: true },
  { name: 'depthwise 3x3 stride 1 same', x: [2, 8, 8, 4], f: [3, 3, 4, 1], strides: 1, pad: 'same', depthwise: true },
  { name: 'depthwise 3x3 stride 2 same, multiplier 2', x: [2, 9, 9, 3], f: [3, 3, 3, 2], strides: 2, pad: 'same', depthwise: true },
  { name: 'depthwise 3x3 stride 2 valid, even input', x: [1, 10, 10, 2], f: [3, 3, 2, 1], strides: 2, pad: 'valid', depthwise: true },
  { name: 'depthwise 3x3 stride 1, 40 channels, multiplier 2 (channel tiles, position blocks)', x: [4, 12, 12, 40], f: [3, 3, 40, 2], strides: 1, pad: 'same', depthwise: true },
  { name: 'large: 64 x 32 x 32 x 16 depthwise stride 2', x: [64, 32, 32, 16], f: [3, 3, 16, 1], strides: 2, pad: 'same', depthwise: true },
];

/** Gradients of sum(conv(x, f) * w) for fixed random x, f, w on the active backend (async reads). */
export async function convGrads(c: ConvCase): Promise<{ dx: Float32Array; df: Float32Array }> {
  const rng = new Random(c.name);
  const rand = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);
  const x = rand(c.x) as tf.Tensor4D, f = rand(c.f) as tf.Tensor4D;
  const bias = tf.fill([c.depthwise ? c.f[2]! * c.f[3]! : c.f[3]!], 0.1);
  const conv = (a: tf.Tensor4D, b: tf.Tensor4D) => {
    const args = { x: a, filter: b, strides: c.strides, pad: c.pad, bias, activation: 'relu' as const };
    if (c.fused) return c.depthwise ? tf.fused.depthwiseConv2d(args) : tf.fused.conv2d(args);
    return c.depthwise ? tf.depthwiseConv2d(a, b, c.strides, c.pad) : tf.conv2d(a, b, c.strides, c.pad);
  };
  const y = conv(x, f);
  const w = rand(y.shape);
  y.dispose();
  const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), w)))([x, f]);
  const out = { dx: (await dx!.data()) as Float32Array, df: (await df!.data()) as Float32Array };
  tf.dispose([x, f, w, dx!, df!, bias]);
  return out;
}

/** Largest absolute difference over the largest magnitude of `want`. */
export function maxRelErr(got: Float32Array, want: Float32Array): number {
  if (got.length !== want.length) return Infinity;
  let scale = 0, err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
  }
  return err / (scale || 1);
}
