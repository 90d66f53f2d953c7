/**
 * A 3-D kinematic body with COCO-17 keypoints. Frame: y up, z the way the subject faces, x to
 * the subject's left; lengths in metres. Angles in radians: flexion raises a limb forward,
 * abduction raises it sideways, elbow and knee flexion bend the distal segment.
 */
import type { Random } from '../../util/index.js';
import { KP, NUM_JOINTS } from '../../skeleton/index.js';

export type Vec3 = [number, number, number];

/** Per-subject body measurements. */
export interface Body {
  height: number;
  thigh: number;
  shin: number;
  upperArm: number;
  forearm: number;
  hipWidth: number;
  shoulderWidth: number;
  torso: number;
  neckToNose: number;
}

/** Draws a body: height 1.5 to 1.95 m, each segment varied about anthropometric ratios. */
export function randomBody(rng: Random): Body {
  const h = rng.uniform(1.5, 1.95);
  const v = () => rng.normal(1, 0.05);
  return {
    height: h,
    thigh: 0.245 * h * v(),
    shin: 0.246 * h * v(),
    upperArm: 0.186 * h * v(),
    forearm: 0.146 * h * v(),
    hipWidth: 0.19 * h * v(),
    shoulderWidth: 0.26 * h * v(),
    torso: 0.3 * h * v(),
    neckToNose: 0.1 * h * v(),
  };
}

/** Joint angles of one side. */
export interface LimbAngles {
  shoulderFlex: number;
  shoulderAbd: number;
  elbow: number;
  hipFlex: number;
  hipAbd: number;
  knee: number;
}

/** A whole-body pose. */
export interface Pose {
  left: LimbAngles;
  right: LimbAngles;
  /** Forward lean of the trunk about the pelvis. */
  lean: number;
  /** Forward pitch of the whole body (pi/2 lies face down, as in a push-up). */
  pitch: number;
  /** Extra height of the pelvis above ground contact (a hop). */
  lift: number;
  /** Which joints touch the ground: feet, or hands and feet. */
  ground: 'feet' | 'hands-feet';
}

/** A neutral standing pose. */
export function standing(): Pose {
  const limb = (): LimbAngles => ({ shoulderFlex: 0, shoulderAbd: 0.08, elbow: 0.1, hipFlex: 0, hipAbd: 0.03, knee: 0 });
  return { left: limb(), right: limb(), lean: 0, pitch: 0, lift: 0, ground: 'feet' };
}

/** Rotation about x that takes "down" (0,-1,0) towards +z (forward) by `t`. */
function rotX(v: Vec3, t: number): Vec3 {
  const c = Math.cos(t), s = Math.sin(t);
  return [v[0], v[1] * c + v[2] * s, -v[1] * s + v[2] * c];
}

/** Rotation about z that takes "down" towards +x (the subject's left) by `t`. */
function rotZ(v: Vec3, t: number): Vec3 {
  const c = Math.cos(t), s = Math.sin(t);
  return [v[0] * c - v[1] * s, v[0] * s + v[1] * c, v[2]];
}

/** Rotation about the vertical axis (camera yaw). */
export function rotY(v: Vec3, t: number): Vec3 {
  const c = Math.cos(t), s = Math.sin(t);
  return [v[0] * c + v[2] * s, v[1], -v[0] * s + v[2] * c];
}

const DOWN: Vec3 = [0, -1, 0];
const add = (a: Vec3, b: Vec3, k = 1): Vec3 => [a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2]];

/** Direction of a segment hanging from a joint: flexion, then abduction towards `side`. */
function limbDir(flex: number, abd: number, side: 1 | -1): Vec3 {
  return rotZ(rotX(DOWN, flex), side * abd);
}

/** Forward kinematics before grounding: the 17 joints, pelvis at the origin. */
function rawJoints(body: Body, pose: Pose): Vec3[] {
  const j: Vec3[] = new Array(NUM_JOINTS);
  const trunk = (v: Vec3) => rotX(v, -pose.lean);
  const neck = trunk([0, body.torso, 0]);
  for (const [side, sign] of [['left', 1], ['right', -1]] as const) {
    const a = pose[side];
    const hip: Vec3 = [(sign * body.hipWidth) / 2, 0, 0];
    const knee = add(hip, limbDir(a.hipFlex, a.hipAbd, sign), body.thigh);
    const ankle = add(knee, limbDir(a.hipFlex - a.knee, a.hipAbd, sign), body.shin);
    const shoulder = add(neck, trunk([(sign * body.shoulderWidth) / 2, -0.02 * body.height, 0]));
    const elbow = add(shoulder, trunk(limbDir(a.shoulderFlex, a.shoulderAbd, sign)), body.upperArm);
    const wrist = add(elbow, trunk(limbDir(a.shoulderFlex + a.elbow, a.shoulderAbd, sign)), body.forearm);
    const i = side === 'left' ? 0 : 1;
    j[KP.left_hip + i] = hip;
    j[KP.left_knee + i] = knee;
    j[KP.left_ankle + i] = ankle;
    j[KP.left_shoulder + i] = shoulder;
    j[KP.left_elbow + i] = elbow;
    j[KP.left_wrist + i] = wrist;
  }
  const h = body.height;
  const nose = add(neck, trunk([0, body.neckToNose, 0.05 * h]));
  j[KP.nose] = nose;
  j[KP.left_eye] = add(nose, trunk([0.018 * h, 0.02 * h, -0.015 * h]));
  j[KP.right_eye] = add(nose, trunk([-0.018 * h, 0.02 * h, -0.015 * h]));
  j[KP.left_ear] = add(nose, trunk([0.045 * h, 0.01 * h, -0.06 * h]));
  j[KP.right_ear] = add(nose, trunk([-0.045 * h, 0.01 * h, -0.06 * h]));
  return pose.pitch === 0 ? j : j.map((p) => rotX(p, -pose.pitch));
}

function minY(joints: Vec3[], idx: readonly number[]): number {
  let m = Infinity;
  for (const i of idx) m = Math.min(m, joints[i]![1]);
  return m;
}

const FEET = [KP.left_ankle, KP.right_ankle];
const HANDS = [KP.left_wrist, KP.right_wrist];

/**
 * The 17 joints of `pose`, standing on the ground (y = 0 at the lowest contact) plus `lift`.
 * In `hands-feet` contact the body's pitch is solved (bisection) so hands and feet both touch.
 */
export function forwardKinematics(body: Body, pose: Pose): Vec3[] {
  let joints: Vec3[];
  if (pose.ground === 'hands-feet') {
    let lo = 0.6, hi = 1.55;
    for (let it = 0; it < 24; it++) {
      const mid = (lo + hi) / 2;
      const j = rawJoints(body, { ...pose, pitch: mid });
      // Pitch further down when the hands sit lower than the feet.
      if (minY(j, HANDS) < minY(j, FEET)) hi = mid;
      else lo = mid;
    }
    joints = rawJoints(body, { ...pose, pitch: (lo + hi) / 2 });
  } else {
    joints = rawJoints(body, pose);
  }
  const floor = minY(joints, pose.ground === 'feet' ? FEET : [...FEET, ...HANDS]);
  return joints.map((p) => [p[0], p[1] - floor + pose.lift, p[2]]);
}
