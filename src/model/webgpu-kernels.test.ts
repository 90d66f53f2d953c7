/**
 * The project's WGSL kernels on a real webgpu backend, with no GPU: Dawn's OpenGL ES backend on
 * Mesa's llvmpipe (AQ_WEBGPU_SOFTWARE=1, backend.ts). Each is checked against the cpu backend's
 * stock kernels, as conv-grad.test.ts checks the wasm ones; the GPU runs the same shaders
 * (`npm run bench:train -- --check` there).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';
import { CONV_CASES, convGrads, maxRelErr } from './conv-check.js';

process.env.AQ_WEBGPU_SOFTWARE = '1';

describe('the project\'s webgpu kernels, on a software adapter', () => {
  beforeAll(async () => {
    const info = await selectBackend('webgpu');
    expect(info.device).toMatch(/^software/);
  });

  // The large case takes minutes on llvmpipe and adds nothing the small ones do not check.
  for (const c of CONV_CASES.filter((k) => !k.name.startsWith('large'))) {
    it(`conv gradients match the cpu backend's stock ones: ${c.name}`, async () => {
      await selectBackend('cpu');
      const want = await convGrads(c);
      await selectBackend('webgpu');
      expect(tf.getBackend()).toBe('webgpu');
      const got = await convGrads(c);
      expect(maxRelErr(got.df, want.df)).toBeLessThan(1e-5);
      expect(maxRelErr(got.dx, want.dx)).toBeLessThan(1e-5);
    });
  }
});
