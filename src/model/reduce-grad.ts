/**
 * The gradients of Sum and Mean without a ones tensor. tfjs-core's multiply the upstream
 * gradient by `ones(x.shape)`, and `ones` fills a typed array of x's size in JavaScript and
 * uploads it: for batch norm's moments over a [256, 32, 32, 16] activation that is 16 MB built and
 * copied to the GPU for each Mean, every step (a CPU profile of a webgpu CNN step on the H100
 * had `makeOnesTypedArray` and the buffers it needs as the largest items after queue submits).
 * Broadcasting the reshaped gradient (one Tile kernel, on the device) gives the same values.
 */
import * as tf from '@tensorflow/tfjs';

/** The reduced axes of an op over `rank` dims, non-negative. */
function axesOf(axis: unknown, rank: number): number[] {
  const list = axis === undefined || axis === null ? [...Array(rank).keys()] : Array.isArray(axis) ? (axis as number[]) : [axis as number];
  return list.map((a) => (a < 0 ? a + rank : a));
}

/** `dy` reshaped to x's rank (reduced axes of size 1) and broadcast to x's shape, times `scale`. */
function spread(dy: tf.Tensor, x: tf.Tensor, axis: unknown, scale: number): tf.Tensor {
  const axes = axesOf(axis, x.rank);
  const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const g = scale === 1 ? dy : tf.mul(dy, scale);
  return tf.broadcastTo(tf.reshape(g, expanded), x.shape);
}

let registered = false;

/**
 * Replaces the Sum and Mean gradients (once per process, unless `again`: after
 * {@link registerOnesGrads}; they are backend-independent).
 */
export function registerReduceGrads(again = false): void {
  if (registered && !again) return;
  registered = true;
  tf.registerGradient({
    kernelName: tf.Sum,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      return { x: () => spread(dy as tf.Tensor, x!, (attrs as { axis?: unknown }).axis, 1) };
    },
  });
  tf.registerGradient({
    kernelName: tf.Mean,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const axes = axesOf((attrs as { axis?: unknown }).axis, x!.rank);
      const n = axes.reduce((p, a) => p * x!.shape[a]!, 1);
      return { x: () => spread(dy as tf.Tensor, x!, (attrs as { axis?: unknown }).axis, 1 / n) };
    },
  });
}

/**
 * tfjs-core's own formulation (a product with `ones(x.shape)`), for benchmarks that time it
 * against {@link registerReduceGrads} in the same run.
 */
export function registerOnesGrads(): void {
  const withOnes = (dy: tf.Tensor, x: tf.Tensor, axis: unknown, scale: number) => {
    const axes = axesOf(axis, x.rank);
    const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const g = tf.mul(tf.reshape(dy, expanded), tf.ones(x.shape, 'float32'));
    return scale === 1 ? g : tf.div(g, 1 / scale);
  };
  tf.registerGradient({ kernelName: tf.Sum, inputsToSave: ['x'], gradFunc: (dy, saved, attrs) => ({ x: () => withOnes(dy as tf.Tensor, (saved)[0]!, (attrs as { axis?: unknown }).axis, 1) }) });
  tf.registerGradient({
    kernelName: tf.Mean,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const x = (saved)[0]!;
      const n = axesOf((attrs as { axis?: unknown }).axis, x.rank).reduce((p, a) => p * x.shape[a]!, 1);
      return { x: () => withOnes(dy as tf.Tensor, x, (attrs as { axis?: unknown }).axis, 1 / n) };
    },
  });
}
