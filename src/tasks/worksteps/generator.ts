/**
 * The `worksteps` task's data: COCO-17 keypoint windows (T x 17 x 3, as `exercise`) of a worker
 * at an assembly workstation running a routine of five steps in order: reach for a part in the
 * bin at the side, pick it, place it on the fixture in front, fasten it, inspect the result;
 * then again. A window ends inside one step, the current one, and shows the step before it.
 * Its label is the current step, and whether that step came out of order: the step before it
 * is not its predecessor in the routine (a step skipped, two swapped, or the routine broken).
 *
 * Each window comes from a random subject (bone lengths, handedness), tempo (each step's
 * duration varies), reach and bin position, camera (yaw, scale, position), keypoint jitter,
 * missing keypoints, and, in half the windows, legs hidden by the bench. A step starts by
 * blending out of wherever the last one ended, so an out-of-order step shows no jump to give it
 * away: only the order of the movements does. Seeded and deterministic.
 */
import { Random } from '../../util/index.js';
import { KP, NUM_JOINTS } from '../../skeleton/index.js';
import { forwardKinematics, randomBody, rotY, standing, type Body, type Vec3 } from '../exercise/body.js';
import { FPS, SEQ_FRAMES, SAMPLE_FLOATS, type ExerciseDatasetOptions, type Samples } from '../exercise/generator.js';

/** The routine's steps, in order. */
export const WORK_STEPS = ['reach', 'pick', 'place', 'fasten', 'inspect'] as const;
export const NUM_STEPS = WORK_STEPS.length;
/** Class names in label order: each step in order, then each step out of order. */
export const WORKSTEP_CLASSES: readonly string[] = [...WORK_STEPS, ...WORK_STEPS.map((s) => `${s} (out of order)`)];

const DEG = Math.PI / 180;

/** The arm angles and trunk lean a step moves through (the dominant arm, the other, the trunk). */
interface Keys {
  dom: [number, number, number];
  other: [number, number, number];
  lean: number;
}

/** Where a window's subject keeps things, and how they move. */
interface Worker {
  body: Body;
  /** 1: the left arm works the bin (left-handed), -1: the right. */
  side: 1 | -1;
  /** Shoulder abduction towards the bin, and flexion, in radians. */
  binAbd: number;
  binFlex: number;
  /** Seconds a step of each kind takes for this worker. */
  durations: number[];
  /** Screwing rate while fastening, Hz. */
  screwHz: number;
}

/** Base durations in seconds: reach, pick, place, fasten, inspect. */
const BASE_SECONDS = [1.0, 1.2, 1.2, 2.0, 1.6];

function randomWorker(rng: Random): Worker {
  const tempo = rng.uniform(0.75, 1.35);
  return {
    body: randomBody(rng),
    side: rng.next() < 0.8 ? -1 : 1,
    binAbd: rng.uniform(35, 65) * DEG,
    binFlex: rng.uniform(50, 75) * DEG,
    durations: BASE_SECONDS.map((s) => s * tempo * rng.uniform(0.85, 1.15)),
    screwHz: rng.uniform(1.2, 2.2),
  };
}

const smooth = (u: number) => (u <= 0 ? 0 : u >= 1 ? 1 : u * u * (3 - 2 * u));
const mix = (a: number, b: number, u: number) => a + (b - a) * u;
const mixKeys = (a: Keys, b: Keys, u: number): Keys => ({
  dom: [mix(a.dom[0], b.dom[0], u), mix(a.dom[1], b.dom[1], u), mix(a.dom[2], b.dom[2], u)],
  other: [mix(a.other[0], b.other[0], u), mix(a.other[1], b.other[1], u), mix(a.other[2], b.other[2], u)],
  lean: mix(a.lean, b.lean, u),
});

/** Step `step`'s pose at progress `u` (0 to 1): [shoulder flexion, abduction, elbow] per arm. */
function stepKeys(w: Worker, step: number, u: number, t: number): Keys {
  const e = smooth(u);
  const hold: [number, number, number] = [35 * DEG, 12 * DEG, 80 * DEG];
  const front: [number, number, number] = [40 * DEG, 12 * DEG, 75 * DEG];
  const atBin: [number, number, number] = [w.binFlex, w.binAbd, 15 * DEG];
  switch (step) {
    case 0: // reach: the working arm out to the bin, the trunk leaning towards it
      return mixKeys({ dom: front, other: hold, lean: 4 * DEG }, { dom: atBin, other: hold, lean: 16 * DEG }, e);
    case 1: { // pick: at the bin, the hand dips and closes (the elbow bends and straightens)
      const dip = Math.sin(Math.PI * u);
      return { dom: [w.binFlex - 15 * DEG * dip, w.binAbd, (15 + 50 * dip) * DEG], other: hold, lean: (16 + 6 * dip) * DEG };
    }
    case 2: // place: the part from the bin to the fixture in front
      return mixKeys({ dom: atBin, other: hold, lean: 16 * DEG }, { dom: front, other: front, lean: 8 * DEG }, e);
    case 3: { // fasten: both hands at the fixture, the working forearm turning a driver
      const turn = Math.sin(2 * Math.PI * w.screwHz * t) * 18 * DEG;
      return { dom: [front[0] + 0.3 * turn, front[1] + turn, front[2] + turn], other: front, lean: 8 * DEG };
    }
    default: { // inspect: the part raised towards the face and turned
      const sway = Math.sin(2 * Math.PI * 0.7 * t) * 6 * DEG;
      const up: [number, number, number] = [75 * DEG, 18 * DEG + sway, 125 * DEG];
      return mixKeys({ dom: front, other: front, lean: 8 * DEG }, { dom: up, other: up, lean: -3 * DEG }, e);
    }
  }
}

/** Seconds a step takes to blend out of the previous step's last pose. */
const BLEND_SECONDS = 0.35;

/** The 17 joints of worker `w` at time `t` of a timeline of steps (start times, ascending). */
function jointsAt(w: Worker, steps: { step: number; start: number; end: number }[], t: number): Vec3[] {
  let i = steps.length - 1;
  while (i > 0 && t < steps[i]!.start) i--;
  const s = steps[i]!;
  const u = Math.min(Math.max((t - s.start) / (s.end - s.start), 0), 1);
  let keys = stepKeys(w, s.step, u, t);
  if (i > 0 && t - s.start < BLEND_SECONDS) {
    const p = steps[i - 1]!;
    keys = mixKeys(stepKeys(w, p.step, 1, s.start), keys, smooth((t - s.start) / BLEND_SECONDS));
  }
  const pose = standing();
  const [dom, other] = w.side === 1 ? [pose.left, pose.right] : [pose.right, pose.left];
  [dom.shoulderFlex, dom.shoulderAbd, dom.elbow] = keys.dom;
  [other.shoulderFlex, other.shoulderAbd, other.elbow] = keys.other;
  pose.lean = keys.lean;
  return forwardKinematics(w.body, pose);
}

/** The step before `step` in the routine. */
export const previousStep = (step: number) => (step + NUM_STEPS - 1) % NUM_STEPS;

/**
 * The step shown before current step `step`: its predecessor, or, `outOfOrder`, one of the
 * others at random (the one before its predecessor: a step skipped; the one after it: two
 * swapped; or the routine broken).
 */
export function stepBefore(rng: Random, step: number, outOfOrder: boolean): number {
  if (!outOfOrder) return previousStep(step);
  const others = Array.from({ length: NUM_STEPS }, (_, i) => i).filter((i) => i !== step && i !== previousStep(step));
  return others[rng.int(others.length)]!;
}

/**
 * Writes one window into `out` ({@link SAMPLE_FLOATS} long: frame, then joint, then x, y,
 * COCO visibility) of a random worker doing current step `step` after step `before`.
 */
export function generateWindow(rng: Random, step: number, before: number, out: Float32Array): void {
  const w = randomWorker(rng);
  // Three steps: the one before `before` (in order), `before`, and the current one; the window
  // ends inside the current step and shows at least 1.2 s of `before`.
  const window = SEQ_FRAMES / FPS;
  const dur = (s: number) => w.durations[s]! * rng.uniform(0.9, 1.1);
  const cur = dur(step), prev = dur(before), first = dur(previousStep(before));
  const intoCurrent = Math.min(rng.uniform(0.55, 1) * cur, window - 1.2);
  const end = first + prev + intoCurrent;
  const steps = [
    { step: previousStep(before), start: 0, end: first },
    { step: before, start: first, end: first + prev },
    { step, start: first + prev, end: first + prev + cur },
  ];
  const shot = {
    yaw: rng.uniform(-60, 60) * DEG,
    scale: rng.uniform(0.35, 0.7) / w.body.height,
    tx: rng.uniform(0.3, 0.7),
    ty: rng.uniform(0.75, 0.95),
    jitter: rng.uniform(0.002, 0.01),
    missing: rng.uniform(0, 0.06),
    legsHidden: rng.next() < 0.5,
  };
  const legs = new Set<number>([KP.left_knee, KP.right_knee, KP.left_ankle, KP.right_ankle]);
  for (let f = 0; f < SEQ_FRAMES; f++) {
    const t = end - window + (f + 1) / FPS;
    const seen = jointsAt(w, steps, Math.max(t, 0)).map((p) => rotY(p, shot.yaw));
    let centreZ = 0;
    for (const p of seen) centreZ += p[2];
    centreZ /= NUM_JOINTS;
    for (let j = 0; j < NUM_JOINTS; j++) {
      const o = (f * NUM_JOINTS + j) * 3;
      if ((shot.legsHidden && legs.has(j)) || rng.next() < shot.missing) {
        out[o] = 0; out[o + 1] = 0; out[o + 2] = 0;
        continue;
      }
      const p = seen[j]!;
      out[o] = shot.tx + shot.scale * p[0] + rng.normal(0, shot.jitter);
      out[o + 1] = shot.ty - shot.scale * p[1] + rng.normal(0, shot.jitter);
      out[o + 2] = p[2] < centreZ - 0.06 * w.body.height ? 1 : 2;
    }
  }
}

/** Share of windows out of order in validation data, and around which nodes' shares vary. */
export const OUT_OF_ORDER_SHARE = 0.3;

/**
 * `count` windows: steps drawn from `stepMix` (each in turn by default), out of order with
 * probability `outOfOrder`. Labels are the step, plus {@link NUM_STEPS} when out of order.
 */
export function generateWorkSamples(rng: Random, count: number, outOfOrder: number, stepMix?: readonly number[]): Samples {
  const x = new Float32Array(count * SAMPLE_FLOATS);
  const y = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const step = stepMix ? rng.categorical(stepMix) : i % NUM_STEPS;
    const flag = rng.next() < outOfOrder;
    y[i] = step + (flag ? NUM_STEPS : 0);
    generateWindow(rng, step, stepBefore(rng, step, flag), x.subarray(i * SAMPLE_FLOATS, (i + 1) * SAMPLE_FLOATS));
  }
  return { count, x, y };
}

/**
 * Shard `index` of a dataset node: its step mix is a Dirichlet draw of the node's seed and
 * `alpha` (non-IID, as `exercise`), its out-of-order share between 0.15 and 0.45.
 */
export function generateWorkShard(options: ExerciseDatasetOptions, index: number): Samples {
  const node = new Random(`${options.seed}/worksteps-mix`);
  const mix = node.dirichlet(new Array<number>(NUM_STEPS).fill(options.alpha));
  const share = node.uniform(0.15, 0.45);
  const rng = new Random(`${options.seed}/worksteps-shard-${index}`);
  const conc = options.shardConcentration ?? 20;
  return generateWorkSamples(rng, options.samplesPerShard, share, rng.dirichlet(mix.map((p) => Math.max(p * conc, 1e-3))));
}

/** Validation windows: steps in turn, {@link OUT_OF_ORDER_SHARE} of them out of order. */
export function generateWorkValidation(seed: string, count: number): Samples {
  return generateWorkSamples(new Random(`${seed}/worksteps-validation`), count, OUT_OF_ORDER_SHARE);
}
