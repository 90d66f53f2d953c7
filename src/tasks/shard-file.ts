/**
 * The shard file: an immutable, self-describing binary a dataset node writes once and serves
 * as is. Layout: magic `AQS1`, u32 LE header length, a JSON header, zero padding to 4 bytes,
 * the float32 samples, then one uint8 label a sample, and, when the header says `keypoints`,
 * zero padding to 4 bytes and that many (x, y, visibility) float32 triples a sample.
 */
import { InvalidFieldError } from '../errors.js';
import type { Samples } from './exercise/generator.js';

const MAGIC = 'AQS1';
const align4 = (n: number) => n + ((4 - (n % 4)) % 4);

/** What a shard file says about itself. */
export interface ShardHeader {
  task: string;
  numSamples: number;
  /** Shape of one sample, e.g. [32, 17, 3]. */
  sampleShape: number[];
  numClasses: number;
  /** Keypoints a sample (17 for COCO), when the samples are labelled with keypoints. */
  keypoints?: number;
}

/** Serialises samples and their header. */
export function encodeShard(header: ShardHeader, samples: Samples): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const pre = 8 + json.length;
  const pad = (4 - (pre % 4)) % 4;
  const xBytes = samples.x.byteLength;
  const kpAt = align4(pre + pad + xBytes + samples.count);
  const kpBytes = (header.keypoints ?? 0) * 3 * 4 * samples.count;
  if (kpBytes > 0 && samples.keypoints?.byteLength !== kpBytes) {
    throw new InvalidFieldError('shard keypoints', `${kpBytes / 4} floats`, `${samples.keypoints?.length ?? 0}`);
  }
  const out = Buffer.alloc(kpBytes > 0 ? kpAt + kpBytes : pre + pad + xBytes + samples.count);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(json.length, 4);
  json.copy(out, 8);
  Buffer.from(samples.x.buffer, samples.x.byteOffset, xBytes).copy(out, pre + pad);
  Buffer.from(samples.y.buffer, samples.y.byteOffset, samples.count).copy(out, pre + pad + xBytes);
  if (kpBytes > 0) Buffer.from(samples.keypoints!.buffer, samples.keypoints!.byteOffset, kpBytes).copy(out, kpAt);
  return out;
}

/** Parses a shard file, checking that its sizes agree with its header. */
export function decodeShard(bytes: Uint8Array): { header: ShardHeader; samples: Samples } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 || buf.toString('latin1', 0, 4) !== MAGIC) {
    throw new InvalidFieldError('shard file', `magic ${MAGIC}`, JSON.stringify(buf.toString('latin1', 0, 4)));
  }
  const jsonLen = buf.readUInt32LE(4);
  if (8 + jsonLen > buf.length) throw new InvalidFieldError('shard header', `at most ${buf.length - 8} bytes`, `${jsonLen}`);
  const header = JSON.parse(buf.toString('utf8', 8, 8 + jsonLen)) as ShardHeader;
  const pre = 8 + jsonLen;
  const start = pre + ((4 - (pre % 4)) % 4);
  const perSample = header.sampleShape.reduce((a, b) => a * b, 1);
  const count = header.numSamples;
  const labelsEnd = start + count * perSample * 4 + count;
  const kp = header.keypoints ?? 0;
  if (!Number.isInteger(kp) || kp < 0 || kp > 1000) throw new InvalidFieldError('shard header.keypoints', 'an integer 0 to 1000', JSON.stringify(header.keypoints));
  const expected = kp > 0 ? align4(labelsEnd) + count * kp * 3 * 4 : labelsEnd;
  if (buf.length !== expected) throw new InvalidFieldError('shard file', `${expected} bytes`, `${buf.length}`);
  const x = new Float32Array(count * perSample);
  new Uint8Array(x.buffer).set(buf.subarray(start, start + x.byteLength));
  const y = new Uint8Array(buf.subarray(start + x.byteLength, labelsEnd));
  for (let i = 0; i < count; i++) {
    if (y[i]! >= header.numClasses) throw new InvalidFieldError(`shard label ${i}`, `< ${header.numClasses}`, `${y[i]}`);
  }
  if (kp === 0) return { header, samples: { count, x, y } };
  const keypoints = new Float32Array(count * kp * 3);
  new Uint8Array(keypoints.buffer).set(buf.subarray(align4(labelsEnd), expected));
  for (let i = 0; i < keypoints.length; i++) {
    if (!Number.isFinite(keypoints[i]!)) throw new InvalidFieldError(`shard keypoint value ${i}`, 'a finite number', String(keypoints[i]));
  }
  return { header, samples: { count, x, y, keypoints } };
}
