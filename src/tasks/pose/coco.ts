/**
 * Real keypoint data: COCO person keypoints (`person_keypoints_*.json`, the images beside it)
 * turned into `pose` samples. Each annotated person (not a crowd, with at least
 * `minKeypoints` labelled keypoints) becomes a square crop around its box (the longer side
 * times 1.25, centred, zero outside the image), resized bilinearly to `size` x `size`, with its
 * 17 keypoints in crop units and COCO's visibility (0 for a keypoint outside the crop).
 * JPEGs are decoded by `jpeg-js` (pure JavaScript, so dataset nodes need no native image
 * library). A COCO person has no movement label: its `y` is 0.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { InvalidFieldError } from '../../errors.js';
import { NUM_JOINTS } from '../../skeleton/index.js';
import type { Samples } from '../exercise/generator.js';

interface CocoImage { id: number; file_name: string; width: number; height: number }
interface CocoAnnotation { image_id: number; bbox: [number, number, number, number]; keypoints: number[]; num_keypoints: number; iscrowd?: number; category_id?: number }

/** Options of {@link importCoco}. */
export interface CocoImportOptions {
  /** The `person_keypoints_*.json` file. */
  annotations: string;
  /** Folder of the images (default: the annotation file's folder). */
  images?: string;
  size: number;
  samplesPerShard: number;
  /** Fewest labelled keypoints a person needs to be kept. Default 5. */
  minKeypoints?: number;
  /** Stop after this many people (0: all). */
  limit?: number;
}

/** What an import found. */
export interface CocoImport {
  people: number;
  skipped: number;
  shards: Samples[];
}

function check(cond: boolean, field: string, expected: string, got: unknown): void {
  if (!cond) throw new InvalidFieldError(field, expected, JSON.stringify(got)?.slice(0, 80) ?? String(got));
}

/** Reads and checks the annotation file. */
async function readAnnotations(file: string): Promise<{ images: Map<number, CocoImage>; people: CocoAnnotation[] }> {
  let doc: { images?: unknown; annotations?: unknown };
  try {
    doc = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new InvalidFieldError('coco annotations', `a readable COCO keypoints JSON file at ${file}`, (err as Error).message.split('\n')[0]!);
  }
  check(Array.isArray(doc.images), 'coco images', 'a list', doc.images);
  check(Array.isArray(doc.annotations), 'coco annotations', 'a list', doc.annotations);
  const images = new Map<number, CocoImage>();
  for (const [i, im] of (doc.images as CocoImage[]).entries()) {
    check(Number.isInteger(im?.id) && typeof im?.file_name === 'string', `coco images[${i}]`, 'an id and a file_name', im);
    images.set(im.id, im);
  }
  const people = (doc.annotations as CocoAnnotation[]).filter((a, i) => {
    check(Array.isArray(a?.keypoints) && a.keypoints.length === NUM_JOINTS * 3, `coco annotations[${i}].keypoints`, `${NUM_JOINTS * 3} numbers`, a?.keypoints?.length);
    check(Array.isArray(a.bbox) && a.bbox.length === 4 && a.bbox.every(Number.isFinite), `coco annotations[${i}].bbox`, '[x, y, width, height]', a.bbox);
    check(images.has(a.image_id), `coco annotations[${i}].image_id`, 'the id of an image in the file', a.image_id);
    return (a.category_id ?? 1) === 1;
  });
  return { images, people };
}

/** A decoded image: RGBA bytes, row-major. */
export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Bilinear sample of an RGBA image at (x, y), zero outside; writes RGB in [0, 1] at `out[o]`. */
export function sampleImage(img: Rgba, x: number, y: number, out: Float32Array, o: number): void {
  const x0 = Math.floor(x), y0 = Math.floor(y), fx = x - x0, fy = y - y0;
  for (let c = 0; c < 3; c++) {
    let v = 0;
    for (const [dx, dy, w] of [[0, 0, (1 - fx) * (1 - fy)], [1, 0, fx * (1 - fy)], [0, 1, (1 - fx) * fy], [1, 1, fx * fy]] as const) {
      const xi = x0 + dx, yi = y0 + dy;
      if (w > 0 && xi >= 0 && yi >= 0 && xi < img.width && yi < img.height) v += w * img.data[(yi * img.width + xi) * 4 + c]!;
    }
    out[o + c] = v / 255;
  }
}

/** Crops one person into `image` (size x size x 3) and writes its keypoints in crop units. */
export function cropPerson(img: Rgba, ann: Pick<CocoAnnotation, 'bbox' | 'keypoints'>, size: number, image: Float32Array, keypoints: Float32Array): void {
  const [bx, by, bw, bh] = ann.bbox;
  const side = Math.max(bw, bh, 1) * 1.25;
  const left = bx + bw / 2 - side / 2, top = by + bh / 2 - side / 2;
  const step = side / size;
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) sampleImage(img, left + (c + 0.5) * step - 0.5, top + (r + 0.5) * step - 0.5, image, (r * size + c) * 3);
  }
  for (let k = 0; k < NUM_JOINTS; k++) {
    const [x, y, v] = [ann.keypoints[k * 3]!, ann.keypoints[k * 3 + 1]!, ann.keypoints[k * 3 + 2]!];
    const u = (x - left) / side, w = (y - top) / side;
    keypoints[k * 3] = v > 0 ? u : 0;
    keypoints[k * 3 + 1] = v > 0 ? w : 0;
    keypoints[k * 3 + 2] = v > 0 && u >= 0 && u < 1 && w >= 0 && w < 1 ? v : 0;
  }
}

/** Imports the file's people into shards of `samplesPerShard` (the last may be smaller). */
export async function importCoco(options: CocoImportOptions, onProgress?: (people: number) => void): Promise<CocoImport> {
  const dir = options.images ?? path.dirname(options.annotations);
  const { images, people } = await readAnnotations(options.annotations);
  const minKp = options.minKeypoints ?? 5;
  const kept = people.filter((a) => !a.iscrowd && a.num_keypoints >= minKp && a.bbox[2] >= 4 && a.bbox[3] >= 4);
  const chosen = options.limit ? kept.slice(0, options.limit) : kept;
  const per = options.size * options.size * 3;
  const shards: Samples[] = [];
  // One image decoded at a time, for all the people in it.
  const byImage = new Map<number, CocoAnnotation[]>();
  for (const a of chosen) byImage.set(a.image_id, [...(byImage.get(a.image_id) ?? []), a]);
  let current: { x: Float32Array; keypoints: Float32Array; n: number } | null = null;
  let done = 0;
  const flush = () => {
    if (current && current.n > 0) {
      shards.push({ count: current.n, x: current.x.slice(0, current.n * per), y: new Uint8Array(current.n), keypoints: current.keypoints.slice(0, current.n * NUM_JOINTS * 3) });
    }
    current = null;
  };
  for (const [imageId, anns] of byImage) {
    const meta = images.get(imageId)!;
    const file = path.join(dir, meta.file_name);
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch {
      throw new InvalidFieldError(`coco image ${meta.file_name}`, `a file at ${file}`, 'none');
    }
    let img: { width: number; height: number; data: Uint8Array };
    try {
      img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
    } catch (err) {
      throw new InvalidFieldError(`coco image ${meta.file_name}`, 'a JPEG image', (err as Error).message);
    }
    for (const a of anns) {
      current ??= { x: new Float32Array(options.samplesPerShard * per), keypoints: new Float32Array(options.samplesPerShard * NUM_JOINTS * 3), n: 0 };
      cropPerson(img, a, options.size, current.x.subarray(current.n * per, (current.n + 1) * per), current.keypoints.subarray(current.n * NUM_JOINTS * 3, (current.n + 1) * NUM_JOINTS * 3));
      current.n++;
      done++;
      if (current.n === options.samplesPerShard) flush();
    }
    onProgress?.(done);
  }
  flush();
  return { people: done, skipped: people.length - done, shards };
}
