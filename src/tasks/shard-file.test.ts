import { describe, expect, it } from 'vitest';
import { decodeShard, encodeShard } from './shard-file.js';
import { generatePoseShard } from './pose/generator.js';
import { generateShard } from './exercise/generator.js';

describe('shard file', () => {
  it('round-trips exercise samples and pose samples with their keypoints', () => {
    const ex = generateShard({ seed: 's', shards: 2, samplesPerShard: 5, alpha: 1 }, 0);
    const a = decodeShard(encodeShard({ task: 'exercise', numSamples: 5, sampleShape: [32, 17, 3], numClasses: 7 }, ex));
    expect(a.samples).toEqual({ count: 5, x: ex.x, y: ex.y });
    const pose = generatePoseShard({ seed: 's', shards: 2, samplesPerShard: 3, alpha: 1 }, 1);
    const header = { task: 'pose', numSamples: 3, sampleShape: [64, 64, 3], numClasses: 7, keypoints: 17 };
    const b = decodeShard(encodeShard(header, pose));
    expect(b.header).toEqual(header);
    expect(b.samples.keypoints).toEqual(pose.keypoints);
    expect(b.samples.x).toEqual(pose.x);
  });

  it('refuses a file whose size, keypoints or values disagree with its header', () => {
    const pose = generatePoseShard({ seed: 's', shards: 2, samplesPerShard: 2, alpha: 1 }, 0);
    const header = { task: 'pose', numSamples: 2, sampleShape: [64, 64, 3], numClasses: 7, keypoints: 17 };
    const bytes = encodeShard(header, pose);
    expect(() => decodeShard(bytes.subarray(0, bytes.length - 4))).toThrow(`shard file: expected ${bytes.length} bytes, got ${bytes.length - 4}`);
    const bad = Buffer.from(bytes);
    bad.writeFloatLE(Number.NaN, bad.length - 8);
    expect(() => decodeShard(bad)).toThrow('expected a finite number, got NaN');
    expect(() => encodeShard({ ...header, keypoints: 16 }, pose)).toThrow('shard keypoints: expected 96 floats, got 102');
  });
});
