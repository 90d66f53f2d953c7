import { describe, expect, it } from 'vitest';
import { Random } from '../../util/index.js';
import { KP, NUM_JOINTS } from '../../skeleton/index.js';
import { FPS, SAMPLE_FLOATS, SEQ_FRAMES } from '../exercise/generator.js';
import {
  NUM_STEPS, OUT_OF_ORDER_SHARE, WORK_STEPS, generateWindow, generateWorkShard, generateWorkValidation, previousStep, stepBefore,
} from './generator.js';

const STEP = Object.fromEntries(WORK_STEPS.map((s, i) => [s, i])) as Record<(typeof WORK_STEPS)[number], number>;

/** Mean height of the wrists above the shoulders, in torso lengths, over frames [from, to). */
function wristsRaised(s: Float32Array, from: number, to: number): number {
  let sum = 0, n = 0;
  for (let f = from; f < to; f++) {
    const at = (j: number) => (f * NUM_JOINTS + j) * 3;
    const sh = (s[at(KP.left_shoulder) + 1]! + s[at(KP.right_shoulder) + 1]!) / 2;
    const hip = (s[at(KP.left_hip) + 1]! + s[at(KP.right_hip) + 1]!) / 2;
    for (const w of [KP.left_wrist, KP.right_wrist]) {
      if (!s[at(w) + 2] || !s[at(KP.left_shoulder) + 2] || !s[at(KP.right_shoulder) + 2] || !s[at(KP.left_hip) + 2] || !s[at(KP.right_hip) + 2]) continue;
      sum += (sh - s[at(w) + 1]!) / Math.max(hip - sh, 1e-3);
      n++;
    }
  }
  return sum / Math.max(n, 1);
}

/** Mean of `f` over `n` windows of `step` after `before`. */
function meanOver(n: number, step: number, before: number, f: (s: Float32Array) => number): number {
  const rng = new Random(`windows/${step}/${before}`);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const s = new Float32Array(SAMPLE_FLOATS);
    generateWindow(rng, step, before, s);
    sum += f(s);
  }
  return sum / n;
}

describe('worksteps data', () => {
  it('labels each window with its step, out of order in the validation share, and is deterministic in its seed', () => {
    const v = generateWorkValidation('seed', 500);
    expect(v.x).toHaveLength(500 * SAMPLE_FLOATS);
    const steps = new Array<number>(NUM_STEPS).fill(0);
    let flagged = 0;
    for (const y of v.y) {
      steps[y % NUM_STEPS]!++;
      if (y >= NUM_STEPS) flagged++;
    }
    expect(steps).toEqual([100, 100, 100, 100, 100]);
    expect(Math.abs(flagged / 500 - OUT_OF_ORDER_SHARE)).toBeLessThan(0.06);
    expect(generateWorkValidation('seed', 20).x).toEqual(generateWorkValidation('seed', 20).x);
    expect(generateWorkValidation('other', 20).x).not.toEqual(generateWorkValidation('seed', 20).x);
  });

  it('gives dataset nodes shards of their own step mix and out-of-order share', () => {
    const share = (seed: string) => {
      const s = generateWorkShard({ seed, shards: 1, samplesPerShard: 400, alpha: 0.5 }, 0);
      return { flagged: [...s.y].filter((y) => y >= NUM_STEPS).length / s.count, top: Math.max(...WORK_STEPS.map((_, k) => [...s.y].filter((y) => y % NUM_STEPS === k).length)) / s.count };
    };
    const a = share('node-a'), b = share('node-b');
    for (const x of [a, b]) {
      expect(x.flagged).toBeGreaterThan(0.1);
      expect(x.flagged).toBeLessThan(0.5);
      // alpha 0.5: skewed, one step well above a fifth.
      expect(x.top).toBeGreaterThan(0.3);
    }
    expect(a).not.toEqual(b);
  });

  it('an out-of-order step comes after a step that is not its predecessor; an in-order one after its predecessor', () => {
    const rng = new Random('before');
    for (let i = 0; i < 200; i++) {
      const step = i % NUM_STEPS;
      expect(stepBefore(rng, step, false)).toBe(previousStep(step));
      const b = stepBefore(rng, step, true);
      expect(b).not.toBe(step);
      expect(b).not.toBe(previousStep(step));
    }
    expect(previousStep(STEP.reach)).toBe(STEP.inspect);
  });

  it('shows the current step at the end of the window and the step before it earlier on', () => {
    // Inspecting raises the part towards the face: its last frames have the wrists high.
    const lastFrames = (s: Float32Array) => wristsRaised(s, SEQ_FRAMES - 4, SEQ_FRAMES);
    const inspecting = meanOver(40, STEP.inspect, STEP.fasten, lastFrames);
    for (const other of [STEP.reach, STEP.pick, STEP.place, STEP.fasten]) {
      expect(inspecting - meanOver(40, other, previousStep(other), lastFrames)).toBeGreaterThan(0.25);
    }
    // Fastening after inspecting (out of order) starts with the wrists high; after placing (in
    // order) it does not: the order is in the window, in its first second.
    const firstSecond = (s: Float32Array) => wristsRaised(s, 0, FPS);
    expect(meanOver(40, STEP.fasten, STEP.inspect, firstSecond) - meanOver(40, STEP.fasten, STEP.place, firstSecond)).toBeGreaterThan(0.25);
  });

  it('writes keypoints in image units, hides the legs behind the bench in about half the windows, and marks missing ones 0', () => {
    const v = generateWorkValidation('keypoints', 200);
    let legsHidden = 0;
    for (let i = 0; i < v.count; i++) {
      const s = v.x.subarray(i * SAMPLE_FLOATS, (i + 1) * SAMPLE_FLOATS);
      let ankles = 0;
      for (let f = 0; f < SEQ_FRAMES; f++) {
        for (let j = 0; j < NUM_JOINTS; j++) {
          const o = (f * NUM_JOINTS + j) * 3;
          if (s[o + 2] === 0) {
            expect([s[o], s[o + 1]]).toEqual([0, 0]);
            continue;
          }
          expect(s[o + 2] === 1 || s[o + 2] === 2).toBe(true);
          expect(s[o]!).toBeGreaterThan(-0.2);
          expect(s[o]!).toBeLessThan(1.2);
          expect(s[o + 1]!).toBeGreaterThan(-0.2);
          expect(s[o + 1]!).toBeLessThan(1.2);
          if (j === KP.left_ankle || j === KP.right_ankle) ankles++;
        }
      }
      if (ankles === 0) legsHidden++;
    }
    expect(legsHidden / v.count).toBeGreaterThan(0.35);
    expect(legsHidden / v.count).toBeLessThan(0.65);
  });
});
