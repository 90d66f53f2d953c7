/**
 * A tiny COCO-format keypoint fixture for tests: rendered people saved as JPEG images, their
 * keypoints in pixels as COCO annotations, plus a crowd and a person with too few keypoints
 * (which an import skips).
 */
import fs from 'node:fs';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { Random } from '../../util/random.js';
import { NUM_JOINTS } from '../exercise/skeleton.js';
import { imageFloats, renderPerson, siteStyle } from './render.js';

/** Writes `n` 96 x 96 JPEG images of one rendered person each; returns the COCO file's path. */
export function writeCocoFixture(where: string, n: number): string {
  fs.mkdirSync(path.join(where, 'val'), { recursive: true });
  const images = [], annotations = [];
  for (let i = 0; i < n; i++) {
    const size = 96, image = new Float32Array(imageFloats(size)), kp = new Float32Array(NUM_JOINTS * 3);
    renderPerson(new Random(`coco-${i}`), i % 7, size, siteStyle(`coco-site-${i}`), image, kp);
    const rgba = new Uint8Array(size * size * 4);
    for (let p = 0; p < size * size; p++) {
      for (let c = 0; c < 3; c++) rgba[p * 4 + c] = Math.round(image[p * 3 + c]! * 255);
      rgba[p * 4 + 3] = 255;
    }
    const file = `${String(i).padStart(12, '0')}.jpg`;
    fs.writeFileSync(path.join(where, 'val', file), jpeg.encode({ data: rgba, width: size, height: size }, 95).data);
    images.push({ id: i + 1, file_name: file, width: size, height: size });
    const px = Array.from(kp, (v, k) => (k % 3 === 2 ? v : v * size));
    const labelled = [...Array(NUM_JOINTS).keys()].filter((k) => kp[k * 3 + 2]! > 0);
    const xs = labelled.map((k) => px[k * 3]!), ys = labelled.map((k) => px[k * 3 + 1]!);
    const bbox = [Math.min(...xs) - 4, Math.min(...ys) - 8, Math.max(...xs) - Math.min(...xs) + 8, Math.max(...ys) - Math.min(...ys) + 12];
    annotations.push({ id: 100 + i, image_id: i + 1, category_id: 1, iscrowd: 0, num_keypoints: labelled.length, bbox, keypoints: px });
  }
  // Skipped: a crowd, and a person with 2 labelled keypoints.
  annotations.push({ ...annotations[0]!, id: 900, iscrowd: 1 });
  annotations.push({ ...annotations[0]!, id: 901, num_keypoints: 2 });
  const file = path.join(where, 'person_keypoints_val.json');
  fs.writeFileSync(file, JSON.stringify({ images, annotations, categories: [{ id: 1, name: 'person' }] }));
  return file;
}

