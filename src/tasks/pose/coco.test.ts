/** COCO import, on a tiny COCO-format fixture the test writes (coco-fixture.ts). */
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { NUM_JOINTS } from '../../skeleton/index.js';
import { cropPerson, importCoco } from './coco.js';
import { writeCocoFixture } from '../../../test/fixtures/coco-fixture.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-coco-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('COCO import', () => {
  it('crops each person to 64 x 64 with its keypoints in crop units, skipping crowds and sparse people', async () => {
    const file = writeCocoFixture(path.join(dir, 'a'), 5);
    const result = await importCoco({ annotations: file, images: path.join(dir, 'a', 'val'), size: 64, samplesPerShard: 2 });
    expect(result.people).toBe(5);
    expect(result.skipped).toBe(2);
    expect(result.shards.map((s) => s.count)).toEqual([2, 2, 1]);
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    let close = 0, visible = 0;
    for (let i = 0; i < 5; i++) {
      const shard = result.shards[i >> 1]!, j = i % 2;
      const kp = shard.keypoints!.subarray(j * 51, (j + 1) * 51), img = shard.x.subarray(j * 64 * 64 * 3, (j + 1) * 64 * 64 * 3);
      const ann = doc.annotations[i];
      const [bx, by, bw, bh] = ann.bbox, side = Math.max(bw, bh) * 1.25, left = bx + bw / 2 - side / 2, top = by + bh / 2 - side / 2;
      const src = jpeg.decode(fs.readFileSync(path.join(dir, 'a', 'val', doc.images[i].file_name)), { useTArray: true });
      for (let k = 0; k < NUM_JOINTS; k++) {
        const v = ann.keypoints[k * 3 + 2];
        expect(kp[k * 3 + 2]).toBe(v);
        if (v === 0) continue;
        expect(kp[k * 3]).toBeCloseTo((ann.keypoints[k * 3] - left) / side, 5);
        expect(kp[k * 3 + 1]).toBeCloseTo((ann.keypoints[k * 3 + 1] - top) / side, 5);
        // The crop shows what the image shows there.
        const [sx, sy] = [Math.floor(ann.keypoints[k * 3]), Math.floor(ann.keypoints[k * 3 + 1])];
        const [cx, cy] = [Math.floor(kp[k * 3]! * 64), Math.floor(kp[k * 3 + 1]! * 64)];
        const diff = Math.max(...[0, 1, 2].map((c) => Math.abs(src.data[(sy * 96 + sx) * 4 + c]! / 255 - img[(cy * 64 + cx) * 3 + c]!)));
        visible++;
        if (diff < 0.15) close++;
      }
    }
    expect(close).toBeGreaterThan(0.8 * visible);
  });

  it('marks keypoints outside the crop as unlabelled, and fills outside the image with zeros', () => {
    const img = { width: 10, height: 10, data: new Uint8Array(400).fill(255) };
    const keypoints = Array(51).fill(0);
    keypoints.splice(0, 3, 5, 5, 2);
    keypoints.splice(3, 3, 40, 5, 2);
    const image = new Float32Array(8 * 8 * 3), kp = new Float32Array(51);
    cropPerson(img, { bbox: [0, 0, 10, 10], keypoints }, 8, image, kp);
    expect([kp[0], kp[1], kp[2]]).toEqual([0.5, 0.5, 2]);
    expect(kp[5]).toBe(0);
    expect(image[0]).toBeLessThan(0.01); // the corner pixel samples mostly outside the image
    expect(image[(4 * 8 + 4) * 3]).toBeCloseTo(1, 5);
  });

  it('names what is wrong with a bad file', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ images: [{ id: 1, file_name: 'x.jpg' }], annotations: [{ image_id: 2, bbox: [0, 0, 5, 5], keypoints: Array(51).fill(0), num_keypoints: 9 }] }));
    await expect(importCoco({ annotations: bad, size: 64, samplesPerShard: 4 })).rejects.toThrow('coco annotations[0].image_id: expected the id of an image in the file, got 2');
    fs.writeFileSync(bad, JSON.stringify({ images: [{ id: 1, file_name: 'x.jpg' }], annotations: [{ image_id: 1, bbox: [0, 0, 5, 5], keypoints: Array(51).fill(1), num_keypoints: 9 }] }));
    await expect(importCoco({ annotations: bad, size: 64, samplesPerShard: 4 })).rejects.toThrow(`coco image x.jpg: expected a file at ${path.join(dir, 'x.jpg')}, got none`);
    await expect(importCoco({ annotations: path.join(dir, 'none.json'), size: 64, samplesPerShard: 4 })).rejects.toThrow('coco annotations: expected a readable COCO keypoints JSON file');
  });
});
