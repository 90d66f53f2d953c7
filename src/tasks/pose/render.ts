/**
 * Procedural person images for the `pose` task: a body from the exercise task's 3-D kinematic
 * model, caught at a random moment of one of its movements, seen from a random camera and
 * drawn as shaded capsules (limbs of varied thickness), a torso, a neck and a head, in clothing
 * and skin colours, over a cluttered background, sometimes partly hidden by an object. The
 * labels are the 17 COCO keypoints in image units with COCO visibility: 2 visible, 1 labelled
 * but hidden (behind the body or under an object), 0 outside the image.
 */
import { Random } from '../../util/index.js';
import { KP, NUM_JOINTS } from '../../skeleton/index.js';
import { rotY, type Vec3 } from '../exercise/body.js';
import { randomFrame } from '../exercise/generator.js';

type RGB = [number, number, number];

/** How a site (one dataset node) tends to look: its walls, floor and light. */
export interface SiteStyle {
  wall: RGB;
  floor: RGB;
  light: number;
}

/** A site's look, drawn from its seed. */
export function siteStyle(seed: string): SiteStyle {
  const rng = new Random(`${seed}/site`);
  return { wall: hsl(rng.next(), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.8)), floor: hsl(rng.next(), rng.uniform(0.05, 0.4), rng.uniform(0.2, 0.6)), light: rng.uniform(0.8, 1.15) };
}

function hsl(h: number, s: number, l: number): RGB {
  const f = (n: number) => {
    const k = (n + h * 12) % 12;
    return l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
  };
  return [f(0), f(8), f(4)];
}

const clamp01 = (x: number) => (x < 0 ? 0 : x > 1 ? 1 : x);

/** A drawing surface of `size` x `size` RGB floats in [0, 1], row-major. */
class Canvas {
  constructor(readonly size: number, readonly px: Float32Array) {}

  blend(i: number, c: RGB, a: number): void {
    const o = i * 3;
    this.px[o] = this.px[o]! * (1 - a) + c[0] * a;
    this.px[o + 1] = this.px[o + 1]! * (1 - a) + c[1] * a;
    this.px[o + 2] = this.px[o + 2]! * (1 - a) + c[2] * a;
  }

  /** A segment of radius r from a to b (pixel units), anti-aliased, shaded across its width. */
  capsule(a: [number, number], b: [number, number], r: number, c: RGB): void {
    const [x0, y0] = a, [x1, y1] = b;
    const lo = (v: number) => Math.max(0, Math.floor(v - r - 1)), hi = (v: number) => Math.min(this.size - 1, Math.ceil(v + r + 1));
    const dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy || 1e-9;
    for (let y = lo(Math.min(y0, y1)); y <= hi(Math.max(y0, y1)); y++) {
      for (let x = lo(Math.min(x0, x1)); x <= hi(Math.max(x0, x1)); x++) {
        const t = Math.max(0, Math.min(1, ((x + 0.5 - x0) * dx + (y + 0.5 - y0) * dy) / len2));
        const ex = x + 0.5 - (x0 + t * dx), ey = y + 0.5 - (y0 + t * dy);
        const d = Math.sqrt(ex * ex + ey * ey);
        const cover = clamp01(r - d + 0.5);
        if (cover <= 0) continue;
        const shade = 1 - 0.35 * (d / Math.max(r, 0.5)) ** 2;
        this.blend(y * this.size + x, [c[0] * shade, c[1] * shade, c[2] * shade], cover);
      }
    }
  }

  /** A filled convex polygon (pixel units). */
  polygon(pts: [number, number][], c: RGB): void {
    const ys = pts.map((p) => p[1]), xs = pts.map((p) => p[0]);
    const inside = (x: number, y: number) => {
      let sign = 0;
      for (let i = 0; i < pts.length; i++) {
        const [ax, ay] = pts[i]!, [bx, by] = pts[(i + 1) % pts.length]!;
        const cross = (bx - ax) * (y - ay) - (by - ay) * (x - ax);
        if (cross !== 0) {
          if (sign !== 0 && Math.sign(cross) !== sign) return false;
          sign = Math.sign(cross);
        }
      }
      return true;
    };
    for (let y = Math.max(0, Math.floor(Math.min(...ys))); y <= Math.min(this.size - 1, Math.ceil(Math.max(...ys))); y++) {
      for (let x = Math.max(0, Math.floor(Math.min(...xs))); x <= Math.min(this.size - 1, Math.ceil(Math.max(...xs))); x++) {
        if (inside(x + 0.5, y + 0.5)) this.blend(y * this.size + x, c, 1);
      }
    }
  }

  rect(x0: number, y0: number, x1: number, y1: number, c: RGB): void {
    for (let y = Math.max(0, Math.floor(y0)); y < Math.min(this.size, Math.ceil(y1)); y++) {
      for (let x = Math.max(0, Math.floor(x0)); x < Math.min(this.size, Math.ceil(x1)); x++) this.blend(y * this.size + x, c, 1);
    }
  }
}

/** Floats of one image of side `size`. */
export const imageFloats = (size: number) => size * size * 3;

/**
 * Renders one person doing movement `label` into `image` (size x size x 3) and writes its
 * keypoints (17 x (x, y, visibility), x and y in [0, 1] image units) into `keypoints`.
 */
export function renderPerson(rng: Random, label: number, size: number, style: SiteStyle, image: Float32Array, keypoints: Float32Array, options: { drawPerson?: boolean } = {}): void {
  const canvas = new Canvas(size, image);
  drawBackground(rng, canvas, style);
  const { body, joints } = randomFrame(rng, label);
  // Camera: yaw about the body, a little roll; the figure fills 45-90% of the frame's height.
  const yaw = rng.uniform(-80, 80) * (Math.PI / 180);
  const roll = rng.normal(0, 0.08);
  const seen: Vec3[] = joints.map((p) => rotY(p, yaw));
  const flat = seen.map(([x, y]) => [x * Math.cos(roll) - y * Math.sin(roll), -(x * Math.sin(roll) + y * Math.cos(roll))] as [number, number]);
  const head = 0.065 * body.height;
  const minX = Math.min(...flat.map((p) => p[0])) - head, maxX = Math.max(...flat.map((p) => p[0])) + head;
  const minY = Math.min(...flat.map((p) => p[1])) - 1.6 * head, maxY = Math.max(...flat.map((p) => p[1])) + 0.3 * head;
  const scale = (rng.uniform(0.45, 0.9) * size) / Math.max(maxY - minY, (maxX - minX) * 0.8);
  const cx = size / 2 + rng.uniform(-0.15, 0.15) * size, cy = size / 2 + rng.uniform(-0.12, 0.12) * size;
  const px = flat.map(([x, y]) => [cx + (x - (minX + maxX) / 2) * scale, cy + (y - (minY + maxY) / 2) * scale] as [number, number]);
  const P = (k: number) => px[k]!;
  const mid = (a: [number, number], b: [number, number]): [number, number] => [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
  // Clothing and build.
  const skin = hsl(rng.uniform(0.02, 0.1), rng.uniform(0.25, 0.6), rng.uniform(0.25, 0.75));
  const shirt = hsl(rng.next(), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.75));
  const trousers = hsl(rng.next(), rng.uniform(0.1, 0.7), rng.uniform(0.1, 0.6));
  const hair = hsl(rng.uniform(0, 0.12), rng.uniform(0.1, 0.6), rng.uniform(0.05, 0.5));
  const longSleeves = rng.next() < 0.5;
  const build = rng.uniform(0.8, 1.3) * scale * body.height;
  const limb = (k: number) => k * build;
  // Parts, drawn far to near (z grows towards the camera).
  const z = (...ks: number[]) => ks.reduce((s, k) => s + seen[k]![2], 0) / ks.length;
  const parts: { z: number; draw: () => void }[] = [];
  for (const s of [0, 1]) {
    const [sh, el, wr, hp, kn, an] = [KP.left_shoulder + s, KP.left_elbow + s, KP.left_wrist + s, KP.left_hip + s, KP.left_knee + s, KP.left_ankle + s];
    parts.push({ z: z(hp, kn), draw: () => canvas.capsule(P(hp), P(kn), limb(0.05), trousers) });
    parts.push({ z: z(kn, an), draw: () => canvas.capsule(P(kn), P(an), limb(0.038), trousers) });
    parts.push({ z: z(sh, el), draw: () => canvas.capsule(P(sh), P(el), limb(0.033), shirt) });
    parts.push({ z: z(el, wr), draw: () => canvas.capsule(P(el), P(wr), limb(0.026), longSleeves ? shirt : skin) });
  }
  const torsoIds = [KP.left_shoulder, KP.right_shoulder, KP.right_hip, KP.left_hip];
  parts.push({
    z: z(...torsoIds),
    draw: () => {
      canvas.polygon(torsoIds.map(P), shirt);
      canvas.capsule(P(KP.left_shoulder), P(KP.left_hip), limb(0.035), shirt);
      canvas.capsule(P(KP.right_shoulder), P(KP.right_hip), limb(0.035), shirt);
      canvas.capsule(P(KP.left_shoulder), P(KP.right_shoulder), limb(0.035), shirt);
    },
  });
  const neck = mid(P(KP.left_shoulder), P(KP.right_shoulder));
  const headCentre = mid(P(KP.left_ear), P(KP.right_ear));
  parts.push({
    z: z(KP.nose, KP.left_ear, KP.right_ear),
    draw: () => {
      canvas.capsule(neck, headCentre, limb(0.025), skin);
      canvas.capsule(headCentre, headCentre, head * scale, hair);
      canvas.capsule(mid(headCentre, P(KP.nose)), mid(headCentre, P(KP.nose)), 0.8 * head * scale, skin);
    },
  });
  // (Without the person, every random draw still happens: tests compare the two images.)
  if (options.drawPerson !== false) parts.sort((a, b) => a.z - b.z).forEach((p) => p.draw());
  // An object in front of the person, sometimes.
  const occluders: [number, number, number, number][] = [];
  if (rng.next() < 0.35) {
    const w = rng.uniform(0.15, 0.4) * size, h = rng.uniform(0.15, 0.4) * size;
    const ox = cx + rng.uniform(-0.3, 0.3) * size - w / 2, oy = cy + rng.uniform(-0.3, 0.3) * size - h / 2;
    occluders.push([ox, oy, ox + w, oy + h]);
    canvas.rect(ox, oy, ox + w, oy + h, hsl(rng.next(), rng.uniform(0, 0.6), rng.uniform(0.1, 0.9)));
  }
  // Light and sensor noise.
  const gain = style.light * rng.uniform(0.85, 1.15), noise = rng.uniform(0.005, 0.03);
  for (let i = 0; i < image.length; i++) image[i] = clamp01(image[i]! * gain + rng.normal(0, noise));
  // Labels.
  const centreZ = seen.reduce((s, p) => s + p[2], 0) / NUM_JOINTS;
  for (let k = 0; k < NUM_JOINTS; k++) {
    const [x, y] = P(k);
    const inFrame = x >= 0 && x < size && y >= 0 && y < size;
    const hidden = seen[k]![2] < centreZ - 0.06 * body.height || occluders.some(([a, b, c, d]) => x >= a && x < c && y >= b && y < d);
    keypoints[k * 3] = x / size;
    keypoints[k * 3 + 1] = y / size;
    keypoints[k * 3 + 2] = inFrame ? (hidden ? 1 : 2) : 0;
  }
}

function drawBackground(rng: Random, canvas: Canvas, style: SiteStyle): void {
  const { size } = canvas;
  const horizon = rng.uniform(0.55, 0.85) * size;
  const tint = () => rng.normal(0, 0.06);
  const wall: RGB = style.wall.map((c) => clamp01(c + tint())) as RGB;
  const floor: RGB = style.floor.map((c) => clamp01(c + tint())) as RGB;
  for (let y = 0; y < size; y++) {
    const onFloor = y >= horizon;
    const base = onFloor ? floor : wall;
    const fade = onFloor ? 0.8 + 0.2 * ((y - horizon) / Math.max(1, size - horizon)) : 1 - 0.15 * (y / size);
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 3;
      canvas.px[o] = base[0] * fade;
      canvas.px[o + 1] = base[1] * fade;
      canvas.px[o + 2] = base[2] * fade;
    }
  }
  // Clutter: equipment, furniture, windows.
  const n = rng.int(5);
  for (let i = 0; i < n; i++) {
    const c = hsl(rng.next(), rng.uniform(0, 0.7), rng.uniform(0.1, 0.9));
    const x = rng.uniform(0, size), y = rng.uniform(0, size), w = rng.uniform(0.05, 0.35) * size, h = rng.uniform(0.05, 0.35) * size;
    if (rng.next() < 0.5) canvas.rect(x, y, x + w, y + h, c);
    else canvas.capsule([x, y], [x + rng.uniform(-w, w), y + rng.uniform(-h, h)], rng.uniform(0.01, 0.05) * size, c);
  }
}
