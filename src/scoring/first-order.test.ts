import { describe, expect, it } from 'vitest';
import { firstOrderScores, roundScale, scoreStep } from './first-order.js';
import { Random } from '../util/index.js';

describe('first-order group scores', () => {
  const rng = new Random(5);
  const vec = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const grad = vec(64);
  const means = [vec(64), vec(64), vec(64)];

  it('scores -g . m and scales by |g| x rms |m|', () => {
    const { scores, scale } = firstOrderScores(grad, means);
    means.forEach((m, j) => expect(scores[j]).toBeCloseTo(-m.reduce((s, x, k) => s + x * grad[k]!, 0), 4));
    const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    expect(scale).toBeCloseTo(norm(grad) * Math.sqrt(means.reduce((s, m) => s + norm(m) ** 2, 0) / 3), 4);
  });

  it('gives the same scaled scores whatever the round size of steps and gradient', () => {
    const a = firstOrderScores(grad, means);
    const b = firstOrderScores(grad.map((g) => g * 1e-3), means.map((m) => m.map((x) => x * 50)));
    a.scores.forEach((s, j) => expect(b.scores[j]! / b.scale).toBeCloseTo(s / a.scale, 5));
  });

  it('scores a weighted sum as its mean, and refuses a step of the wrong length', () => {
    const sum = means[0]!.map((x) => x * 4);
    expect(scoreStep(grad, sum, 1 / 4).score).toBeCloseTo(firstOrderScores(grad, [means[0]!]).scores[0]!, 4);
    expect(() => scoreStep(grad, vec(63))).toThrow('expected an update of 64 values, got 63');
    expect(roundScale(new Float32Array(4), [1, 2])).toBe(1);
  });
});
