/**
 * A training thread (train-threads.ts): loads TF.js on the backend it is given, builds the
 * model of each call's topology (kept while the topology stays the same), and answers each step
 * with its slice's gradient, written into its shared gradient vector.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';
import { modelFromTopology } from './spec.js';
import { setFlatParams } from './params.js';
import { sliceGradients } from './train-threads.js';
import { trainingForward } from './bn-act.js';
import type { Dataset } from './train.js';
import type { Head } from './head.js';

interface Begin {
  type: 'begin';
  id: number;
  topology: string;
  head: Head;
  count: number;
  features: Float32Array;
  labels: Uint8Array;
  keypoints: Float32Array | null;
  weights: Float32Array;
  grads: Float32Array;
}
interface Step {
  type: 'step';
  id: number;
  version: number;
  rows: Int32Array;
}
interface End {
  type: 'end';
  id: number;
}

const given = workerData as { backend: string; wasmDir?: string };
const ready = (async () => {
  if (given.wasmDir) (await import('@tensorflow/tfjs-backend-wasm')).setWasmPaths(`${given.wasmDir.replace(/\/$/, '')}/`);
  return selectBackend(given.backend);
})();
let built: { topology: string; model: tf.LayersModel; forward: (x: tf.Tensor) => tf.Tensor } | null = null;
let call: { data: Dataset; head: Head; weights: Float32Array; grads: Float32Array; version: number; scratch?: Float32Array } | null = null;

async function handle(m: Begin | Step | End): Promise<{ sum?: number; weight?: number }> {
  await ready;
  if (m.type === 'begin') {
    if (built?.topology !== m.topology) {
      built?.model.dispose();
      built = null;
      const model = await modelFromTopology(m.topology);
      built = { topology: m.topology, model, forward: trainingForward(model) };
    }
    const data: Dataset = { count: m.count, features: m.features, labels: m.labels, ...(m.keypoints ? { keypoints: m.keypoints } : {}) };
    call = { data, head: m.head, weights: m.weights, grads: m.grads, version: 0 };
    return {};
  }
  if (m.type === 'end') {
    call = null;
    return {};
  }
  if (!call || !built) throw new Error('a step before its call began');
  if (m.version !== call.version) {
    setFlatParams(built.model, call.weights);
    call.version = m.version;
  }
  const dim = call.data.features.length / call.data.count;
  if (!call.scratch || call.scratch.length < m.rows.length * dim) call.scratch = new Float32Array(m.rows.length * dim);
  return sliceGradients(built.model, built.forward, call.data, call.head, m.rows, call.grads, call.scratch);
}

// One message at a time, in order: a step must see the begin before it.
let queue: Promise<unknown> = Promise.resolve();
parentPort!.on('message', (m: Begin | Step | End) => {
  queue = queue.then(async () => {
    try {
      parentPort!.postMessage({ id: m.id, ...(await handle(m)) });
    } catch (err) {
      parentPort!.postMessage({ id: m.id, error: (err as Error).message });
    }
  });
});
