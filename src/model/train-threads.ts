/**
 * Local training on every CPU core: synchronous data parallelism across worker threads, each
 * with its own TF.js backend (wasm's kernels run on one core per thread). Every batch is cut
 * into one slice per thread; each thread computes the gradient of its slice's summed loss at
 * the same weights, the main thread adds them, divides by the batch's total loss weight (so the
 * step is the whole batch's mean-loss gradient, as on one thread) and makes the optimizer's
 * step, and the new weights reach the threads through shared memory before the next batch.
 *
 * The batch's data (features, labels, keypoints) is copied once per call into shared memory;
 * a step's messages carry only the slice's row numbers. Batch statistics (batch norm) are each
 * slice's, and the moving averages are the main thread's, as in PyTorch's
 * DistributedDataParallel without synchronised batch norm.
 */
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { tsxApiUrl } from '../util/index.js';
import { lossSum, targetsOf, type Head } from './head.js';
import { inputBatch, type Dataset } from './train.js';
import { getFlatParams } from './params.js';

/** The trainable variables of `model`, in order. */
function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/** Floats in the flat vector of the trainable variables. */
function trainableCount(model: tf.LayersModel): number {
  return trainableVariables(model).reduce((n, v) => n + v.size, 0);
}

/**
 * The gradient of the summed loss of rows `rows` of `data` with respect to the trainable
 * variables, written flat into `out` (in their order); returns the loss sum and its weight.
 */
export async function sliceGradients(model: tf.LayersModel, forward: (x: tf.Tensor) => tf.Tensor, data: Dataset, head: Head, rows: Int32Array, out: Float32Array, scratch?: Float32Array): Promise<{ sum: number; weight: number }> {
  const vars = trainableVariables(model);
  const n = rows.length;
  const index = (b: number) => rows[b]!;
  let weightT: tf.Scalar | null = null;
  const { value, grads } = tf.tidy(() => {
    const x = inputBatch(model, data, index, n, scratch);
    const t = targetsOf(head, data, index, n);
    return tf.variableGrads(() => {
      const { sum, weight } = lossSum(head, t, forward(x));
      weightT = tf.keep(weight);
      return sum;
    }, vars);
  });
  let off = 0;
  for (const v of vars) {
    const g = grads[v.name];
    if (g) out.set(await g.data(), off);
    else out.fill(0, off, off + v.size);
    off += v.size;
  }
  const sum = (await value.data())[0]!;
  const weight = (await weightT!.data())[0]!;
  tf.dispose([value, weightT!, ...Object.values(grads)]);
  return { sum, weight };
}

/** Makes one optimizer step on a batch of rows and returns its mean loss; `end` once done. */
export interface Stepper {
  step(rows: Int32Array): Promise<number>;
  end(): Promise<void>;
}

/** What a call of local training gives the threads. */
export interface StepperRequest {
  model: tf.LayersModel;
  /** The model's topology JSON: the threads build their copies from it. */
  topology: string;
  data: Dataset;
  head: Head;
  optimizer: tf.Optimizer;
  forward: (x: tf.Tensor) => tf.Tensor;
  batchSize: number;
  /** The step on this thread alone. */
  single: (rows: Int32Array) => Promise<number>;
}

/** What timing a model's batches both ways found (samples a second). */
export interface Verdict {
  shared: boolean;
  batchSize: number;
  threads: number;
  alonePerSecond: number;
  sharedPerSecond: number;
}

/** Full batches timed each way (after one untimed) before the faster is chosen. */
export const PROBE_STEPS = 2;

/** The number of threads `--threads 0` (auto) means: the cores this process may use. */
export function autoThreads(): number {
  return Math.max(1, os.availableParallelism());
}

interface Pending {
  resolve: (v: { sum: number; weight: number }) => void;
  reject: (e: Error) => void;
}

/** One worker thread and its calls in flight. */
class TrainWorker {
  readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | null = null;

  constructor(script: { boot: string } | { file: string }, workerData: { backend: string; wasmDir?: string }) {
    this.worker = 'boot' in script ? new Worker(script.boot, { eval: true, workerData }) : new Worker(script.file, { workerData });
    this.worker.unref();
    this.worker.on('message', (m: { id: number; error?: string; sum?: number; weight?: number }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(`training thread: ${m.error}`));
      else p?.resolve({ sum: m.sum ?? 0, weight: m.weight ?? 0 });
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', (err) => fail(new Error(`training thread failed: ${err.message}`)));
    this.worker.on('exit', (code) => fail(new Error(`training thread exited (code ${code})`)));
  }

  get broken(): boolean {
    return this.failure !== null;
  }

  call(message: Record<string, unknown>): Promise<{ sum: number; weight: number }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
  }
}

/** The worker is TypeScript: tsx's loader first, then the module (as the mask pool does). */
function tsBoot(): string {
  const api = tsxApiUrl();
  const url = new URL('./train-worker.ts', import.meta.url).href;
  return `import(${JSON.stringify(api)}).then(({ tsImport }) => tsImport(${JSON.stringify(url)}, ${JSON.stringify(url)}))`;
}

function verdictKey(topology: string, batchSize: number): string {
  return `${batchSize}:${createHash('sha256').update(topology).digest('hex')}`;
}

/** A shared copy of `a` (the threads read it without a copy of their own). */
function sharedCopy<T extends Float32Array | Uint8Array>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const Ctor = a.constructor as new (b: SharedArrayBuffer) => T;
  const out = new Ctor(new SharedArrayBuffer(a.byteLength));
  out.set(a);
  return out;
}

/**
 * A pool of training threads for one backend, started on first use and kept between rounds
 * (each thread loads TF.js and its backend once, and keeps the model built for a topology).
 */
export class TrainThreads {
  private workers: TrainWorker[] | null = null;
  /** Per model topology and batch size: whether sharing batches among the threads was faster. */
  private readonly verdicts = new Map<string, boolean>();

  /**
   * `threads` counts the main thread: `threads - 1` worker threads are started. `workerFile`:
   * the worker as one bundled file (a bench bundle without tsx); `wasmDir`: where the wasm
   * backend's .wasm files are, when not beside its package.
   */
  constructor(readonly threads: number, readonly backend: string, private readonly options: { workerFile?: string; wasmDir?: string; onVerdict?: (v: Verdict) => void } = {}) {}

  private start(): TrainWorker[] {
    if (this.workers && !this.workers.some((w) => w.broken)) return this.workers;
    void this.close();
    const script = this.options.workerFile ? { file: this.options.workerFile } : { boot: tsBoot() };
    const data = { backend: this.backend, ...(this.options.wasmDir ? { wasmDir: this.options.wasmDir } : {}) };
    this.workers = Array.from({ length: this.threads - 1 }, () => new TrainWorker(script, data));
    return this.workers;
  }

  /** Whether sharing batches was faster for this model and batch size (undefined: not yet measured). */
  verdict(topology: string, batchSize: number): boolean | undefined {
    return this.verdicts.get(verdictKey(topology, batchSize));
  }

  /** Settles, without timing, whether batches of this model and size are shared. */
  remember(topology: string, batchSize: number, shared: boolean): void {
    this.verdicts.set(verdictKey(topology, batchSize), shared);
  }

  /**
   * The steps of one call of local training. Sharing a batch costs a copy of the weights and
   * gradients each step, which a small model's step does not repay (the exercise MLP is slower
   * shared, the pose CNN faster): the first time a model and batch
   * size are trained, {@link PROBE_STEPS} full batches are timed on this thread and as many
   * shared (each after an untimed one), and the faster way is kept for them from then on.
   */
  async stepper(r: StepperRequest): Promise<Stepper> {
    const key = verdictKey(r.topology, r.batchSize);
    const known = this.verdicts.get(key);
    const alone: Stepper = { step: r.single, end: async () => {} };
    if (known === false) return alone;
    const shared = await this.begin(r.model, r.topology, r.data, r.head, r.optimizer, r.forward);
    if (known === true) return shared;
    const perSample = { alone: [] as number[], shared: [] as number[] };
    let decided: Stepper | null = null;
    const seen = { alone: 0, shared: 0 };
    return {
      step: async (rows) => {
        if (decided) return decided.step(rows);
        const way = seen.alone <= PROBE_STEPS ? 'alone' : 'shared';
        const t0 = performance.now();
        const loss = await (way === 'alone' ? alone : shared).step(rows);
        if (rows.length === r.batchSize) {
          if (seen[way]++ > 0) perSample[way].push((performance.now() - t0) / rows.length);
          if (perSample.shared.length === PROBE_STEPS) {
            const alonePerSecond = 1000 / Math.min(...perSample.alone), sharedPerSecond = 1000 / Math.min(...perSample.shared);
            const faster = sharedPerSecond > alonePerSecond;
            this.verdicts.set(key, faster);
            this.options.onVerdict?.({ shared: faster, batchSize: r.batchSize, threads: this.threads, alonePerSecond, sharedPerSecond });
            decided = faster ? shared : alone;
          }
        }
        return loss;
      },
      end: () => shared.end(),
    };
  }

  /**
   * Prepares the threads for one call of local training of `model` (built from `topology`) on
   * `data`: they build the model (once per topology) and take the data's shared copy.
   */
  async begin(model: tf.LayersModel, topology: string, data: Dataset, head: Head, optimizer: tf.Optimizer, forward: (x: tf.Tensor) => tf.Tensor): Promise<ParallelSteps> {
    const workers = this.start();
    const features = sharedCopy(data.features), labels = sharedCopy(data.labels);
    const keypoints = data.keypoints ? sharedCopy(data.keypoints) : null;
    const params = await getFlatParams(model);
    const weights = new Float32Array(new SharedArrayBuffer(params.byteLength));
    weights.set(params);
    const size = trainableCount(model);
    const grads = workers.map(() => new Float32Array(new SharedArrayBuffer(size * 4)));
    await Promise.all(workers.map((w, i) => w.call({ type: 'begin', topology, head, count: data.count, features, labels, keypoints, weights, grads: grads[i] })));
    return new ParallelSteps(model, workers, weights, grads, { ...data, features, labels, ...(keypoints ? { keypoints } : {}) }, head, optimizer, forward);
  }

  /** Stops the threads. */
  async close(): Promise<void> {
    const ws = this.workers ?? [];
    this.workers = null;
    await Promise.all(ws.map((w) => w.worker.terminate()));
  }
}

/** The batches of one call of local training, each split across the threads. */
export class ParallelSteps implements Stepper {
  /** Bumped each time the weights are written; a thread reloads them when it differs. */
  private version = 0;
  private readonly vars: tf.Variable[];
  private readonly total: Float32Array;
  private readonly own: Float32Array;
  private scratch: Float32Array | undefined;

  constructor(
    private readonly model: tf.LayersModel,
    private readonly workers: TrainWorker[],
    private readonly weights: Float32Array,
    private readonly grads: Float32Array[],
    private readonly data: Dataset,
    private readonly head: Head,
    private readonly optimizer: tf.Optimizer,
    private readonly forward: (x: tf.Tensor) => tf.Tensor,
  ) {
    this.vars = trainableVariables(model);
    const size = this.vars.reduce((n, v) => n + v.size, 0);
    this.total = new Float32Array(size);
    this.own = new Float32Array(size);
  }

  /**
   * One optimizer step on the batch of rows `rows`, the slices computed at once on every
   * thread; returns the batch's mean loss.
   */
  async step(rows: Int32Array): Promise<number> {
    const parts = this.workers.length + 1;
    const per = Math.ceil(rows.length / parts);
    const slice = (i: number) => rows.subarray(Math.min(rows.length, i * per), Math.min(rows.length, (i + 1) * per));
    // The weights as they stand (this thread's steps may have moved them) for the threads' slices.
    this.weights.set(await getFlatParams(this.model));
    const version = ++this.version;
    this.scratch ??= new Float32Array(per * (this.data.features.length / this.data.count));
    const calls = this.workers.map((w, i) => {
      const r = slice(i + 1);
      return r.length > 0 ? w.call({ type: 'step', version, rows: Int32Array.from(r) }) : Promise.resolve({ sum: 0, weight: 0, empty: true });
    });
    const mine = await sliceGradients(this.model, this.forward, this.data, this.head, slice(0), this.own, this.scratch);
    const theirs = await Promise.all(calls);
    let sum = mine.sum, weight = mine.weight;
    this.total.set(this.own);
    theirs.forEach((t, i) => {
      if ('empty' in t) return;
      sum += t.sum;
      weight += t.weight;
      const g = this.grads[i]!;
      for (let k = 0; k < g.length; k++) this.total[k]! += g[k]!;
    });
    const scale = 1 / Math.max(weight, 1);
    tf.tidy(() => {
      const named: tf.NamedTensorMap = {};
      let off = 0;
      for (const v of this.vars) {
        named[v.name] = tf.mul(tf.tensor(this.total.subarray(off, off + v.size), v.shape), scale);
        off += v.size;
      }
      this.optimizer.applyGradients(named);
    });
    return sum * scale;
  }

  /** Lets the threads drop this call's data. */
  async end(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call({ type: 'end' }).catch(() => {})));
  }
}
