import { describe, expect, it } from 'vitest';
import { Random } from '../../util/index.js';
import { NUM_JOINTS } from '../../skeleton/index.js';
import { imageFloats, renderPerson, siteStyle } from './render.js';
import { generatePoseShard, generatePoseValidation } from './generator.js';

function render(seed: string, size: number, drawPerson = true) {
  const image = new Float32Array(imageFloats(size)), keypoints = new Float32Array(NUM_JOINTS * 3);
  renderPerson(new Random(seed), Number(seed.length % 7), size, siteStyle('site'), image, keypoints, { drawPerson });
  return { image, keypoints };
}

describe('pose renderer', () => {
  it('draws the person where its visible keypoints are, and nothing where an object hides them', () => {
    let visible = 0, hiddenByObject = 0, sampled = 0;
    for (let s = 0; s < 40; s++) {
      for (const size of [64, 96]) {
        const seed = `img-${s}`;
        const a = render(seed, size), b = render(seed, size, false);
        expect(a.keypoints).toEqual(b.keypoints);
        const diffNear = (x: number, y: number) => {
          let m = 0;
          for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
            const px = Math.min(size - 1, Math.max(0, Math.floor(x * size) + dx)), py = Math.min(size - 1, Math.max(0, Math.floor(y * size) + dy));
            for (let c = 0; c < 3; c++) m = Math.max(m, Math.abs(a.image[(py * size + px) * 3 + c]! - b.image[(py * size + px) * 3 + c]!));
          }
          return m;
        };
        for (let k = 0; k < NUM_JOINTS; k++) {
          const [x, y, v] = [a.keypoints[k * 3]!, a.keypoints[k * 3 + 1]!, a.keypoints[k * 3 + 2]!];
          if (v === 0) {
            expect(x < 0 || x >= 1 || y < 0 || y >= 1).toBe(true);
            continue;
          }
          expect(x).toBeGreaterThanOrEqual(0);
          expect(x).toBeLessThan(1);
          sampled++;
          if (v === 2) {
            visible++;
            // The person's pixels differ from what is behind them (shading can match the
            // background by chance in one channel, hardly in all three of 9 pixels).
            expect(diffNear(x, y)).toBeGreaterThan(0.02);
          } else if (diffNear(x, y) === 0) {
            hiddenByObject++;
          }
        }
      }
    }
    expect(visible).toBeGreaterThan(sampled / 2);
    expect(hiddenByObject).toBeGreaterThan(0);
  });

  it('is deterministic per seed, with pixels in [0, 1]', () => {
    const a = generatePoseShard({ seed: 'gym', shards: 4, samplesPerShard: 6, alpha: 1 }, 2);
    const b = generatePoseShard({ seed: 'gym', shards: 4, samplesPerShard: 6, alpha: 1 }, 2);
    expect(a.x).toEqual(b.x);
    expect(a.keypoints).toEqual(b.keypoints);
    expect(a.x.every((v) => v >= 0 && v <= 1)).toBe(true);
    const c = generatePoseShard({ seed: 'clinic', shards: 4, samplesPerShard: 6, alpha: 1 }, 2);
    expect(c.x).not.toEqual(a.x);
    expect(generatePoseValidation('v', 5, 96).x.length).toBe(5 * 96 * 96 * 3);
    expect(() => generatePoseValidation('v', 5, 80)).toThrow('pose image size: expected one of 64, 96, got 80');
  });

  it('gives each site its own look: mean colour differs more between sites than within one', () => {
    const mean = (seed: string, index: number) => {
      const s = generatePoseShard({ seed, shards: 2, samplesPerShard: 8, alpha: 1 }, index);
      const m = [0, 0, 0];
      for (let i = 0; i < s.x.length; i++) m[i % 3]! += s.x[i]! / (s.x.length / 3);
      return m;
    };
    const dist = (p: number[], q: number[]) => Math.hypot(...p.map((v, i) => v - q[i]!));
    const [a0, a1, b0] = [mean('gym', 0), mean('gym', 1), mean('factory', 0)];
    expect(dist(a0, b0)).toBeGreaterThan(dist(a0, a1));
  });
});
