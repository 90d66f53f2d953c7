/**
 * Model input of the `exercise` task: each sequence is centred on its mean hip midpoint and
 * scaled by its median torso length (shoulder midpoint to hip midpoint), so camera translation
 * and scale do not matter; missing joints stay (0, 0) with a 0 visibility flag.
 */
import { KP, NUM_JOINTS } from '../../skeleton/index.js';
import { SEQ_FRAMES, SAMPLE_FLOATS } from './generator.js';

function mid(seq: Float32Array, f: number, a: number, b: number): [number, number] | null {
  const oa = (f * NUM_JOINTS + a) * 3, ob = (f * NUM_JOINTS + b) * 3;
  if (seq[oa + 2] === 0 || seq[ob + 2] === 0) return null;
  return [(seq[oa]! + seq[ob]!) / 2, (seq[oa + 1]! + seq[ob + 1]!) / 2];
}

/** Normalises one sequence from `src` into `dst` (both {@link SAMPLE_FLOATS} long). */
export function normalizeSequence(src: Float32Array, dst: Float32Array): void {
  let cx = 0, cy = 0, n = 0;
  const torso: number[] = [];
  for (let f = 0; f < SEQ_FRAMES; f++) {
    const hip = mid(src, f, KP.left_hip, KP.right_hip);
    const sh = mid(src, f, KP.left_shoulder, KP.right_shoulder);
    if (hip) { cx += hip[0]; cy += hip[1]; n++; }
    if (hip && sh) torso.push(Math.hypot(sh[0] - hip[0], sh[1] - hip[1]));
  }
  if (n === 0) {
    // No frame with both hips: fall back to the mean of all visible joints.
    for (let o = 0; o < SAMPLE_FLOATS; o += 3) if (src[o + 2] !== 0) { cx += src[o]!; cy += src[o + 1]!; n++; }
  }
  if (n > 0) { cx /= n; cy /= n; }
  torso.sort((a, b) => a - b);
  const scale = torso.length > 0 ? Math.max(torso[torso.length >> 1]!, 1e-3) : 0.1;
  for (let o = 0; o < SAMPLE_FLOATS; o += 3) {
    if (src[o + 2] === 0) {
      dst[o] = 0; dst[o + 1] = 0; dst[o + 2] = 0;
    } else {
      dst[o] = (src[o]! - cx) / scale;
      dst[o + 1] = (src[o + 1]! - cy) / scale;
      dst[o + 2] = 1;
    }
  }
}

/** Normalises `count` sequences laid back to back. */
export function exerciseFeatures(x: Float32Array, count: number): Float32Array {
  const out = new Float32Array(count * SAMPLE_FLOATS);
  for (let i = 0; i < count; i++) {
    const s = i * SAMPLE_FLOATS;
    normalizeSequence(x.subarray(s, s + SAMPLE_FLOATS), out.subarray(s, s + SAMPLE_FLOATS));
  }
  return out;
}
