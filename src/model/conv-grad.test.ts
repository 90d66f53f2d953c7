/**
 * The project's conv backprop kernels on wasm (where stock tfjs has none) against the cpu
 * backend's stock kernels, through tfjs's own gradients of plain and fused convolutions, over
 * strides, paddings, kernel sizes and channel multipliers (conv-check.ts). (tfjs's gradients
 * refuse dilation before any backprop kernel runs.)
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';
import { CONV_CASES, convGrads, maxRelErr } from '../../test/fixtures/conv-check.js';

describe('conv backprop kernels registered by the project', () => {
  it('stock wasm has no conv backprop-filter or depthwise backprop kernels (the reason this exists)', async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    // Before selectBackend registers ours.
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'wasm')).toBeUndefined();
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')).toBeUndefined();
    expect(tf.getKernel('Conv2DBackpropFilter', 'cpu')).toBeDefined();
  });

  for (const c of CONV_CASES) {
    it(`match the cpu backend's stock gradients: ${c.name}`, async () => {
      await selectBackend('cpu');
      const want = await convGrads(c);
      await selectBackend('wasm');
      const got = await convGrads(c);
      expect(maxRelErr(got.df, want.df)).toBeLessThan(1e-5);
      expect(maxRelErr(got.dx, want.dx)).toBeLessThan(1e-5);
    });
  }
});
