import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';

describe('transpose-first BatchMatMul on wasm', () => {
  it('gives the cpu backend\'s products for every transpose combination and batch shape', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[5, 7], [7, 3], false, false], [[7, 5], [7, 3], true, false], [[5, 7], [3, 7], false, true], [[7, 5], [3, 7], true, true],
      [[4, 6, 8], [4, 6, 2], true, false], [[4, 8, 6], [4, 2, 6], false, true],
    ];
    for (const [sa, sb, ta, tb] of cases) {
      const a = Array.from({ length: sa.reduce((x, y) => x * y) }, (_, i) => Math.sin(i));
      const b = Array.from({ length: sb.reduce((x, y) => x * y) }, (_, i) => Math.cos(i));
      const run = async (backend: string) => {
        await selectBackend(backend);
        return tf.tidy(() => tf.matMul(tf.tensor(a, sa), tf.tensor(b, sb), ta, tb).arraySync());
      };
      const want = await run('cpu');
      const got = await run('wasm');
      const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x as number]);
      flat(got).forEach((v, i) => expect(v).toBeCloseTo(flat(want)[i]!, 4));
    }
  });
});
