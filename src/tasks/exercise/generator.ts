/**
 * The `exercise` task's data: COCO-17 keypoint sequences (T x 17 x 3: x, y in normalised image
 * coordinates, COCO visibility 0/1/2) of seven movements, each from a random subject (bone
 * lengths), tempo, range of motion, camera (yaw, scale, translation), jitter and missing joints.
 * Seeded and deterministic. Dataset nodes draw a Dirichlet class mix, so their shards are
 * non-IID (Hsu et al. 2019, "Measuring the effects of non-identical data distribution").
 */
import { Random } from '../../util/index.js';
import { NUM_JOINTS } from '../../skeleton/index.js';
import { forwardKinematics, randomBody, rotY, standing, type Body, type Pose, type Vec3 } from './body.js';

/** Class names, in label order. */
export const EXERCISE_CLASSES = [
  'squat', 'lunge', 'push_up', 'jumping_jack', 'shoulder_abduction', 'biceps_curl', 'idle',
] as const;
export type ExerciseClass = (typeof EXERCISE_CLASSES)[number];
export const NUM_CLASSES = EXERCISE_CLASSES.length;

/** Frames a sequence, at {@link FPS}. */
export const SEQ_FRAMES = 32;
export const FPS = 10;
/** Floats a sample: T x 17 x (x, y, visibility). */
export const SAMPLE_FLOATS = SEQ_FRAMES * NUM_JOINTS * 3;

const DEG = Math.PI / 180;

/** Per-sequence movement parameters. */
interface Motion {
  tempoHz: number;
  phase0: number;
  rom: number;
  side: 1 | -1;
  variant: number;
}

/** 0 at rest, 1 at the far end of the movement; a smooth repetition of period 1/tempo. */
function cycle(m: Motion, t: number, offset = 0): number {
  return (1 - Math.cos(2 * Math.PI * m.tempoHz * t + m.phase0 + offset)) / 2;
}

type PoseFn = (m: Motion, t: number, rng: Random) => Pose;

const POSES: Readonly<Record<ExerciseClass, PoseFn>> = {
  squat(m, t) {
    const a = cycle(m, t) * m.rom;
    const p = standing();
    for (const s of [p.left, p.right]) {
      s.hipFlex = 100 * DEG * a;
      s.knee = 115 * DEG * a;
      s.hipAbd = 0.12;
      s.shoulderFlex = m.variant < 0.5 ? 80 * DEG * a : 0.1;
    }
    p.lean = 35 * DEG * a;
    return p;
  },
  lunge(m, t) {
    const a = cycle(m, t) * m.rom;
    const p = standing();
    const [front, back] = m.side === 1 ? [p.left, p.right] : [p.right, p.left];
    front.hipFlex = 85 * DEG * a;
    front.knee = 95 * DEG * a;
    back.hipFlex = -20 * DEG * a;
    back.knee = 85 * DEG * a;
    p.lean = 8 * DEG * a;
    return p;
  },
  push_up(m, t) {
    const a = cycle(m, t) * m.rom;
    const p = standing();
    p.ground = 'hands-feet';
    for (const s of [p.left, p.right]) {
      const e = 80 * DEG * a;
      s.shoulderFlex = 90 * DEG - e;
      s.elbow = e;
      s.shoulderAbd = 0.15 + 0.2 * m.variant;
      s.hipAbd = 0.05;
    }
    return p;
  },
  jumping_jack(m, t) {
    const a = cycle(m, t) * m.rom;
    const p = standing();
    for (const s of [p.left, p.right]) {
      s.shoulderAbd = 0.1 + 155 * DEG * a;
      s.elbow = 0.15;
      s.hipAbd = 0.03 + 18 * DEG * a;
    }
    p.lift = 0.05 * Math.sin(Math.PI * a);
    return p;
  },
  shoulder_abduction(m, t) {
    const a = cycle(m, t) * m.rom;
    const p = standing();
    const reach = (90 + 70 * m.variant) * DEG;
    const both = m.variant > 0.4;
    for (const [s, side] of [[p.left, 1], [p.right, -1]] as const) {
      if (both || side === m.side) s.shoulderAbd = 0.08 + reach * a;
      s.elbow = 0.05;
    }
    return p;
  },
  biceps_curl(m, t) {
    const p = standing();
    const alternate = m.variant > 0.5;
    for (const [s, off] of [[p.left, 0], [p.right, alternate ? Math.PI : 0]] as const) {
      s.elbow = 0.15 + 125 * DEG * cycle(m, t, off) * m.rom;
      s.shoulderFlex = 0.12;
      s.shoulderAbd = 0.1;
    }
    return p;
  },
  idle(m, t, rng) {
    const p = standing();
    const sway = Math.sin(2 * Math.PI * 0.15 * t + m.phase0);
    p.lean = 3 * DEG * sway + 2 * DEG * m.variant;
    p.left.hipAbd = 0.05 + 0.03 * sway;
    p.right.hipAbd = 0.05 - 0.03 * sway;
    p.left.shoulderAbd = 0.1 + 0.05 * rng.normal();
    p.right.shoulderAbd = 0.1 + 0.05 * rng.normal();
    p.left.elbow = 0.2 + 0.3 * m.variant + 0.05 * rng.normal();
    p.right.elbow = 0.2 + 0.3 * m.variant + 0.05 * rng.normal();
    return p;
  },
};

const TEMPO_HZ: Readonly<Record<ExerciseClass, number>> = {
  squat: 0.4, lunge: 0.3, push_up: 0.5, jumping_jack: 1.0, shoulder_abduction: 0.25, biceps_curl: 0.5, idle: 0.2,
};

/** Camera and noise of one sequence. */
interface Shot {
  yaw: number;
  scale: number;
  tx: number;
  ty: number;
  jitter: number;
  missing: number;
}

/** Movement `label`'s name and a random repetition of it (tempo, phase, range, side, variant). */
function randomMotion(rng: Random, label: number): { cls: ExerciseClass; motion: Motion } {
  const cls = EXERCISE_CLASSES[label];
  if (cls === undefined) throw new RangeError(`label: expected 0 to ${NUM_CLASSES - 1}, got ${label}`);
  return {
    cls,
    motion: {
      tempoHz: TEMPO_HZ[cls] * rng.uniform(0.7, 1.4),
      phase0: rng.uniform(0, 2 * Math.PI),
      rom: rng.uniform(0.6, 1.0),
      side: rng.next() < 0.5 ? 1 : -1,
      variant: rng.next(),
    },
  };
}

/**
 * One frame of movement `label` at a random moment of a random repetition: the pose and the
 * body performing it (the `pose` task renders such frames as images).
 */
export function randomFrame(rng: Random, label: number, body: Body = randomBody(rng)): { body: Body; joints: Vec3[] } {
  const { cls, motion } = randomMotion(rng, label);
  return { body, joints: forwardKinematics(body, POSES[cls](motion, rng.uniform(0, 10), rng)) };
}

/**
 * Writes one sequence of class `label` into `out` (length {@link SAMPLE_FLOATS}, frame-major,
 * then joint, then x, y, visibility). Coordinates are in [0, 1] image units; a missing joint is
 * (0, 0, 0); a joint behind the body from the camera's view has visibility 1, else 2.
 */
export function generateSequence(rng: Random, label: number, out: Float32Array, body: Body = randomBody(rng)): void {
  const { cls, motion } = randomMotion(rng, label);
  const shot: Shot = {
    yaw: rng.uniform(-65, 65) * DEG,
    scale: rng.uniform(0.35, 0.7) / body.height,
    tx: rng.uniform(0.3, 0.7),
    ty: rng.uniform(0.75, 0.95),
    jitter: rng.uniform(0.002, 0.012),
    missing: rng.uniform(0, 0.08),
  };
  for (let f = 0; f < SEQ_FRAMES; f++) {
    const joints = forwardKinematics(body, POSES[cls](motion, f / FPS, rng));
    // Depth of the torso centre, to mark joints behind it as occluded.
    const seen: Vec3[] = joints.map((p) => rotY(p, shot.yaw));
    let centreZ = 0;
    for (const p of seen) centreZ += p[2];
    centreZ /= NUM_JOINTS;
    for (let j = 0; j < NUM_JOINTS; j++) {
      const o = (f * NUM_JOINTS + j) * 3;
      if (rng.next() < shot.missing) {
        out[o] = 0; out[o + 1] = 0; out[o + 2] = 0;
        continue;
      }
      const p = seen[j]!;
      out[o] = shot.tx + shot.scale * p[0] + rng.normal(0, shot.jitter);
      out[o + 1] = shot.ty - shot.scale * p[1] + rng.normal(0, shot.jitter);
      out[o + 2] = p[2] < centreZ - 0.06 * body.height ? 1 : 2;
    }
  }
}

/**
 * A batch of samples: `x` holds `count` samples back to back, `y` their class labels, and, for
 * tasks that label keypoints, `keypoints` their 17 x (x, y, visibility) each.
 */
export interface Samples {
  count: number;
  x: Float32Array;
  y: Uint8Array;
  keypoints?: Float32Array;
}

/** Generates `count` sequences with labels drawn from `classMix` (uniform by default). */
export function generateSamples(rng: Random, count: number, classMix?: readonly number[]): Samples {
  const x = new Float32Array(count * SAMPLE_FLOATS);
  const y = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const label = classMix ? rng.categorical(classMix) : i % NUM_CLASSES;
    y[i] = label;
    generateSequence(rng, label, x.subarray(i * SAMPLE_FLOATS, (i + 1) * SAMPLE_FLOATS));
  }
  return { count, x, y };
}

/** How a dataset node's data is drawn. */
export interface ExerciseDatasetOptions {
  /** Seed of this node's data; two nodes with different seeds hold different data. */
  seed: string;
  shards: number;
  samplesPerShard: number;
  /** Dirichlet concentration of the node's class mix: small is skewed, large is near-uniform. */
  alpha: number;
  /** Concentration of each shard's mix around the node's (larger keeps shards closer to it). */
  shardConcentration?: number;
}

/** The class mix a node's seed and alpha produce. */
export function nodeClassMix(seed: string, alpha: number): number[] {
  return new Random(`${seed}/mix`).dirichlet(new Array<number>(NUM_CLASSES).fill(alpha));
}

/** Generates shard `index` of a node: deterministic in (seed, index), independent of the others. */
export function generateShard(options: ExerciseDatasetOptions, index: number): Samples {
  const nodeMix = nodeClassMix(options.seed, options.alpha);
  const conc = options.shardConcentration ?? 20;
  const rng = new Random(`${options.seed}/shard-${index}`);
  const shardMix = rng.dirichlet(nodeMix.map((p) => Math.max(p * conc, 1e-3)));
  return generateSamples(rng, options.samplesPerShard, shardMix);
}

/** Validation data: class-balanced, from a seed only the coordinator knows. */
export function generateValidation(seed: string, count: number): Samples {
  return generateSamples(new Random(`${seed}/validation`), count);
}
