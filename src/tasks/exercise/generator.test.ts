import { describe, expect, it } from 'vitest';
import { Random } from '../../util/index.js';
import {
  EXERCISE_CLASSES, NUM_CLASSES, SAMPLE_FLOATS, SEQ_FRAMES, generateSequence, generateShard, generateValidation, nodeClassMix,
} from './generator.js';
import { KP, NUM_JOINTS } from '../../skeleton/index.js';
import { exerciseFeatures } from './features.js';

const at = (s: Float32Array, f: number, j: number) => {
  const o = (f * NUM_JOINTS + j) * 3;
  return [s[o]!, s[o + 1]!, s[o + 2]!] as const;
};
const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1] ?? 0;

/** Per-class means of kinematic signatures over `n` sequences each. */
function signatures(n = 30) {
  const rng = new Random('signatures');
  return EXERCISE_CLASSES.map((_, c) => {
    let aboveHead = 0, wristAnkle = 0, hipRange = 0, wristMotion = 0;
    for (let k = 0; k < n; k++) {
      const s = new Float32Array(SAMPLE_FLOATS);
      generateSequence(rng, c, s);
      let above = 0, prev: readonly number[] | null = null, motion = 0;
      const wa: number[] = [], hipY: number[] = [], extent: number[] = [];
      for (let f = 0; f < SEQ_FRAMES; f++) {
        const nose = at(s, f, KP.nose), lw = at(s, f, KP.left_wrist), la = at(s, f, KP.left_ankle), ls = at(s, f, KP.left_shoulder);
        const lh = at(s, f, KP.left_hip), rh = at(s, f, KP.right_hip);
        if (nose[2] && lw[2] && lw[1] < nose[1]) above++;
        if (lw[2] && la[2] && ls[2]) wa.push(Math.abs(lw[1] - la[1]) / Math.max(Math.hypot(ls[0] - lw[0], ls[1] - lw[1]), 1e-3));
        if (lh[2] && rh[2]) hipY.push((lh[1] + rh[1]) / 2);
        if (la[2] && nose[2]) extent.push(Math.abs(la[1] - nose[1]));
        if (lw[2] && prev && prev[2]) motion += Math.hypot(lw[0] - prev[0]!, lw[1] - prev[1]!);
        prev = lw;
      }
      const h = median(extent);
      aboveHead += above / SEQ_FRAMES;
      wristAnkle += median(wa);
      hipRange += (Math.max(...hipY) - Math.min(...hipY)) / h;
      wristMotion += motion / h;
    }
    return { cls: EXERCISE_CLASSES[c], aboveHead: aboveHead / n, wristAnkle: wristAnkle / n, hipRange: hipRange / n, wristMotion: wristMotion / n };
  });
}

describe('exercise generator', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const opts = { seed: 'node-a', shards: 4, samplesPerShard: 16, alpha: 1 };
    const a = generateShard(opts, 2);
    const b = generateShard(opts, 2);
    expect(Buffer.from(a.x.buffer).equals(Buffer.from(b.x.buffer))).toBe(true);
    expect(Array.from(a.y)).toEqual(Array.from(b.y));
    const c = generateShard({ ...opts, seed: 'node-b' }, 2);
    expect(Buffer.from(a.x.buffer).equals(Buffer.from(c.x.buffer))).toBe(false);
    expect(Buffer.from(a.x.buffer).equals(Buffer.from(generateShard(opts, 3).x.buffer))).toBe(false);
  });

  it('writes COCO-17 sequences: coordinates in the image, COCO visibility, some joints missing', () => {
    const { x } = generateValidation('v', 70);
    let missing = 0, occluded = 0;
    for (let o = 0; o < x.length; o += 3) {
      const v = x[o + 2]!;
      expect([0, 1, 2]).toContain(v);
      if (v === 0) {
        missing++;
        expect(x[o]).toBe(0);
        expect(x[o + 1]).toBe(0);
      } else {
        expect(x[o]!).toBeGreaterThan(-0.2);
        expect(x[o]!).toBeLessThan(1.2);
      }
      if (v === 1) occluded++;
    }
    const joints = x.length / 3;
    expect(missing / joints).toBeGreaterThan(0.005);
    expect(missing / joints).toBeLessThan(0.1);
    expect(occluded).toBeGreaterThan(0);
  });

  it('gives validation data every class in equal numbers', () => {
    const { y } = generateValidation('v', 700);
    const counts = new Array(NUM_CLASSES).fill(0);
    for (const l of y) counts[l]++;
    expect(counts).toEqual(new Array(NUM_CLASSES).fill(100));
  });

  it('labels each sequence with the movement it shows', () => {
    const sig = signatures();
    const by = (k: 'aboveHead' | 'wristAnkle' | 'hipRange' | 'wristMotion') => [...sig].sort((a, b) => b[k] - a[k]).map((s) => s.cls);
    // Hands on the floor with the feet: only the push-up.
    expect(by('wristAnkle').at(-1)).toBe('push_up');
    // Hands above the head: only jumping jacks and shoulder abduction raise them that far.
    expect(by('aboveHead').slice(0, 2).sort()).toEqual(['jumping_jack', 'shoulder_abduction']);
    expect(sig.find((s) => s.cls === 'biceps_curl')!.aboveHead).toBe(0);
    // The hips travel in squats, lunges and push-ups, hardly otherwise.
    expect(by('hipRange').slice(0, 3).sort()).toEqual(['lunge', 'push_up', 'squat']);
    // Standing still moves the wrists least.
    expect(by('wristMotion').at(-1)).toBe('idle');
  });

  it('makes dataset nodes non-IID as alpha says: skewed for small alpha, near uniform for large', () => {
    const tv = (p: number[], q: number[]) => p.reduce((s, pi, i) => s + Math.abs(pi - q[i]!), 0) / 2;
    const uniform = new Array(NUM_CLASSES).fill(1 / NUM_CLASSES);
    const meanTv = (alpha: number) => {
      let s = 0;
      for (let i = 0; i < 20; i++) s += tv(nodeClassMix(`node-${i}`, alpha), uniform);
      return s / 20;
    };
    expect(meanTv(0.1)).toBeGreaterThan(0.5);
    expect(meanTv(100)).toBeLessThan(0.1);
    // A node's shards follow its mix: two nodes' label histograms differ as their mixes do.
    const hist = (seed: string) => {
      const h = new Array(NUM_CLASSES).fill(0);
      let n = 0;
      for (let i = 0; i < 20; i++) for (const l of generateShard({ seed, shards: 20, samplesPerShard: 50, alpha: 0.3 }, i).y) { h[l]++; n++; }
      return h.map((c) => c / n);
    };
    const [ha, hb] = [hist('node-a'), hist('node-b')];
    const [ma, mb] = [nodeClassMix('node-a', 0.3), nodeClassMix('node-b', 0.3)];
    expect(tv(ha, ma)).toBeLessThan(0.1);
    expect(tv(hb, mb)).toBeLessThan(0.1);
    expect(tv(ha, hb)).toBeGreaterThan(0.3);
  });

  it('normalises away camera translation and scale', () => {
    const rng = new Random(3);
    const s = new Float32Array(SAMPLE_FLOATS);
    generateSequence(rng, 0, s);
    const moved = s.map((v, i) => (i % 3 === 2 || s[i - (i % 3) + 2] === 0 ? v : (i % 3 === 0 ? 0.1 + 2 * v : -0.3 + 2 * v)));
    const [a, b] = [exerciseFeatures(s, 1), exerciseFeatures(moved, 1)];
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 4);
  });
});
