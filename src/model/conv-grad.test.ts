/**
 * The project's conv gradients on wasm (where stock tfjs has none) against the cpu backend's
 * stock kernels, through tfjs's own gradients of plain and fused convolutions, over strides,
 * paddings, kernel sizes and channel multipliers. (tfjs's gradients refuse dilation before any
 * backprop kernel runs.)
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';
import { Random } from '../util/random.js';

interface Case { name: string; x: number[]; f: number[]; strides: number | [number, number]; pad: 'same' | 'valid'; depthwise?: boolean; fused?: boolean }

const cases: Case[] = [
  { name: '3x3 stride 1 same', x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3x3 stride 2 same', x: [2, 9, 8, 3], f: [3, 3, 3, 5], strides: 2, pad: 'same' },
  { name: '5x3 stride (2,1) valid', x: [1, 11, 7, 2], f: [5, 3, 2, 3], strides: [2, 1], pad: 'valid' },
  { name: '1x1 pointwise', x: [3, 6, 6, 8], f: [1, 1, 8, 6], strides: 1, pad: 'same' },
  { name: 'fused conv with bias and relu (what Layers uses)', x: [2, 8, 8, 3], f: [3, 3, 3, 4], strides: 2, pad: 'same', fused: true },
  { name: 'fused depthwise with bias and relu', x: [2, 8, 8, 4], f: [3, 3, 4, 1], strides: 1, pad: 'same', depthwise: true, fused: true },
  { name: 'depthwise 3x3 stride 1 same', x: [2, 8, 8, 4], f: [3, 3, 4, 1], strides: 1, pad: 'same', depthwise: true },
  { name: 'depthwise 3x3 stride 2 same, multiplier 2', x: [2, 9, 9, 3], f: [3, 3, 3, 2], strides: 2, pad: 'same', depthwise: true },
  { name: 'depthwise 3x3 stride 2 valid, even input', x: [1, 10, 10, 2], f: [3, 3, 2, 1], strides: 2, pad: 'valid', depthwise: true },
];

/** Gradients of sum(conv(x, f) * w) for fixed random x, f, w on the active backend. */
async function grads(c: Case): Promise<{ dx: Float32Array; df: Float32Array }> {
  const rng = new Random(c.name);
  const rand = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);
  const x = rand(c.x) as tf.Tensor4D, f = rand(c.f) as tf.Tensor4D;
  const bias = tf.fill([c.depthwise ? c.f[2]! * c.f[3]! : c.f[3]!], 0.1);
  const conv = (a: tf.Tensor4D, b: tf.Tensor4D) => {
    const args = { x: a, filter: b, strides: c.strides, pad: c.pad, bias, activation: 'relu' as const };
    if (c.fused) return c.depthwise ? tf.fused.depthwiseConv2d(args) : tf.fused.conv2d(args);
    return c.depthwise ? tf.depthwiseConv2d(a, b, c.strides, c.pad, 'NHWC') : tf.conv2d(a, b, c.strides, c.pad, 'NHWC');
  };
  const w = rand(conv(x, f).shape);
  const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), w)))([x, f]);
  const out = { dx: (await dx!.data()) as Float32Array, df: (await df!.data()) as Float32Array };
  tf.dispose([x, f, w, dx!, df!, bias]);
  return out;
}

function maxRelErr(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  const scale = Math.max(...b.map(Math.abs));
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0) / scale;
}

describe('conv backprop kernels registered by the project', () => {
  it('stock wasm has no conv backprop-filter or depthwise backprop kernels (the reason this exists)', async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    // Before selectBackend registers ours.
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'wasm')).toBeUndefined();
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')).toBeUndefined();
    expect(tf.getKernel('Conv2DBackpropFilter', 'cpu')).toBeDefined();
  });

  for (const c of cases) {
    it(`match the cpu backend's stock gradients: ${c.name}`, async () => {
      await selectBackend('cpu');
      const want = await grads(c);
      await selectBackend('wasm');
      const got = await grads(c);
      expect(maxRelErr(got.df, want.df)).toBeLessThan(1e-5);
      expect(maxRelErr(got.dx, want.dx)).toBeLessThan(1e-5);
    });
  }
});
