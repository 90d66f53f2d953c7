/**
 * The `pose` task's data: rendered person images (render.ts) with COCO-17 keypoints. A dataset
 * node is a site: its own walls, floor and light (siteStyle) and its own Dirichlet mix of the
 * movements people do there, so shards are non-IID in both look and pose. Seeded and
 * deterministic; validation mixes many sites the coordinator alone draws.
 */
import { Random } from '../../util/index.js';
import { NUM_CLASSES, nodeClassMix, type ExerciseDatasetOptions, type Samples } from '../exercise/generator.js';
import { NUM_JOINTS } from '../../skeleton/index.js';
import { imageFloats, renderPerson, siteStyle, type SiteStyle } from './render.js';

/** Image sides the task renders. */
export const POSE_SIZES = [64, 96] as const;
export const DEFAULT_POSE_SIZE = 64;

/** Renders `count` images; each sample's site comes from `styleOf(i)`. */
export function generatePoseSamples(rng: Random, count: number, size: number, styleOf: (i: number) => SiteStyle, classMix?: readonly number[]): Samples {
  if (!(POSE_SIZES as readonly number[]).includes(size)) throw new RangeError(`pose image size: expected one of ${POSE_SIZES.join(', ')}, got ${size}`);
  const per = imageFloats(size);
  const x = new Float32Array(count * per);
  const y = new Uint8Array(count);
  const keypoints = new Float32Array(count * NUM_JOINTS * 3);
  for (let i = 0; i < count; i++) {
    const label = classMix ? rng.categorical(classMix) : i % NUM_CLASSES;
    y[i] = label;
    renderPerson(rng, label, size, styleOf(i), x.subarray(i * per, (i + 1) * per), keypoints.subarray(i * NUM_JOINTS * 3, (i + 1) * NUM_JOINTS * 3));
  }
  return { count, x, y, keypoints };
}

/** Shard `index` of a site: deterministic in (seed, index), independent of the others. */
export function generatePoseShard(options: ExerciseDatasetOptions, index: number, size = DEFAULT_POSE_SIZE): Samples {
  const nodeMix = nodeClassMix(options.seed, options.alpha);
  const conc = options.shardConcentration ?? 20;
  const rng = new Random(`${options.seed}/pose-shard-${index}`);
  const shardMix = rng.dirichlet(nodeMix.map((p) => Math.max(p * conc, 1e-3)));
  const style = siteStyle(options.seed);
  return generatePoseSamples(rng, options.samplesPerShard, size, () => style, shardMix);
}

/** Validation images: movement-balanced, a fresh site every 8 images. */
export function generatePoseValidation(seed: string, count: number, size = DEFAULT_POSE_SIZE): Samples {
  const styles = Array.from({ length: Math.ceil(count / 8) }, (_, k) => siteStyle(`${seed}/validation-site-${k}`));
  return generatePoseSamples(new Random(`${seed}/pose-validation`), count, size, (i) => styles[i >> 3]!);
}
