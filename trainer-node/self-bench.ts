/**
 * A trainer's self-benchmark at start: the samples a second it trains the default models of the
 * built-in tasks at (the exercise MLP, the pose CNN), on its backend, with the training step it
 * runs for real rounds (trainLocal: Adam, the task's loss) on random inputs at batch 32. One
 * batch warms up (kernels compile, memory is allocated); then batches run for about `seconds`.
 * The operator reads the figures at start; the pose CNN's is the capacity the trainer
 * advertises (the coordinator refines it from the updates it observes).
 */
import { buildModel, trainLocal, type Dataset } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';
import { NUM_JOINTS } from '../src/skeleton/index.js';
import { Random } from '../src/util/index.js';

/** One model's measured speed. */
export interface MeasuredSpeed {
  task: string;
  model: string;
  samplesPerSecond: number;
}

const BATCH = 32;

/** Random inputs and labels of `task` for `count` samples. */
function randomData(task: ReturnType<typeof getTask>, count: number, rng: Random): Dataset {
  const per = task.inputShape.reduce((a, b) => a * b, 1);
  const keypoints = task.keypoints > 0 ? Float32Array.from({ length: count * NUM_JOINTS * 3 }, (_, i) => (i % 3 === 2 ? 2 : rng.next())) : undefined;
  return {
    count,
    features: Float32Array.from({ length: count * per }, () => rng.next()),
    labels: Uint8Array.from({ length: count }, () => rng.int(task.classes.length)),
    ...(keypoints ? { keypoints } : {}),
  };
}

/** Measures each task's default model for about `seconds` (after a warm-up batch). */
export async function selfBenchmark(tasks: readonly string[] = ['exercise', 'pose'], seconds = 0.6): Promise<MeasuredSpeed[]> {
  const out: MeasuredSpeed[] = [];
  const rng = new Random('self-benchmark');
  for (const name of tasks) {
    const task = getTask(name);
    const model = buildModel(task.defaultModel, task.inputShape, task.head, 1);
    try {
      const options = { epochs: 1, batchSize: BATCH, learningRate: task.defaultLearningRate, optimizer: 'adam' as const, head: task.head, seed: 1 };
      await trainLocal(model, randomData(task, BATCH, rng), options);
      // Batches until the time is up: enough data for many, stopped once `seconds` have passed.
      const stop = new AbortController();
      let done = 0;
      const started = performance.now();
      await trainLocal(model, randomData(task, BATCH * 256, rng), {
        ...options, signal: stop.signal,
        onProgress: (samples) => {
          done = samples;
          if (performance.now() - started >= seconds * 1000) stop.abort();
        },
      }).catch((err: unknown) => {
        if (!stop.signal.aborted) throw err;
      });
      const elapsed = (performance.now() - started) / 1000;
      out.push({ task: name, model: task.defaultModel.family, samplesPerSecond: done / Math.max(elapsed, 1e-3) });
    } finally {
      model.dispose();
    }
  }
  return out;
}
