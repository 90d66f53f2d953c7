/**
 * The model process: the child that holds a job's model and does all work on it (building,
 * evaluating, gradients, saving) for the coordinator, which talks to it over Node's IPC channel
 * (`model-host.ts` is the other half). A researcher's model that exhausts memory or traps the
 * wasm runtime ends this process, never the coordinator. It exits when the channel closes, so a
 * coordinator that dies leaves no model process behind.
 */
import * as tf from '@tensorflow/tfjs';
import { buildCheckedModel, checkOnnx, evaluate, getFlatParams, lossGradient, saveModelFiles, selectBackend, setFlatParams, topologyJson, type Dataset, type Evaluation, type ModelBudget, type ModelCost, type ModelSpec, type OnnxCheck } from '../model/index.js';
import fs from 'node:fs/promises';
import { getTask, type TaskDefinition } from '../tasks/index.js';
import { InvalidFieldError } from '../errors.js';
import { RAW_VECTOR_FIELDS, RawVectors } from './model-wire.js';

/** What builds a job's model and its validation data. */
export interface ModelInit {
  task: string;
  spec: ModelSpec;
  modelSeed: number;
  budget: ModelBudget;
  /** The job's batch size (activations are checked at it). */
  batch: number;
  validationSeed: string;
  validationSamples: number;
  /** The TF.js backend to use (the coordinator's). */
  backend: string;
}

/** The built model as the coordinator keeps it. */
export interface ModelBuilt {
  params: Float32Array;
  topology: string;
  cost: ModelCost;
}

/** One request to the model process. `params` rides along when the process holds other ones. */
export type ModelRequest = { id: number } & (
  | { op: 'init'; init: ModelInit }
  | { op: 'evaluate'; sha: string; params?: Float32Array }
  | { op: 'evaluateStep'; sha: string; params?: Float32Array; sum: Float32Array; scale: number }
  | { op: 'lossGradient'; sha: string; params?: Float32Array }
  | { op: 'save'; sha: string; params?: Float32Array; dir: string }
  | { op: 'examples'; sha: string; params?: Float32Array; count: number }
);

/** Samples drawn like the validation data, as an app sees them: raw, as model input, and the model's output. */
export interface ModelExample {
  raw: Float32Array;
  input: Float32Array;
  output: Float32Array;
}

/** What saving wrote and found: the ONNX file run in ONNX Runtime on the validation data against TF.js. */
export interface ModelSaved {
  onnx: OnnxCheck;
}

/** A failure as it crosses the channel; an InvalidFieldError keeps its fields. */
export interface ModelFailure {
  name: string;
  message: string;
  field?: { field: string; expected: string; got: string };
}

/** The answer to request `id`. */
export type ModelReply = { id: number; ok: unknown } | { id: number; error: ModelFailure };

/** Validation data of `task` drawn from `seed`, features extracted. */
function validationData(task: TaskDefinition, seed: string, samples: number): Dataset {
  const v = task.generateValidation(seed, samples);
  return { count: v.count, features: task.features(v.x, v.count), labels: v.y, keypoints: v.keypoints };
}

/** The model, its task and data, and which parameters it holds. */
class Held {
  sha = '';
  params: Float32Array | null = null;
  constructor(readonly model: tf.LayersModel, readonly task: TaskDefinition, readonly validation: Dataset, readonly seed: string) {}

  /** Puts the parameters with digest `sha` in the model (sent along when they differ from those held). */
  load(sha: string, params: Float32Array | undefined): void {
    if (params) {
      setFlatParams(this.model, params);
      this.sha = sha;
      this.params = params;
    } else if (sha !== this.sha) {
      throw new Error(`parameters ${sha.slice(0, 12)} were not sent and are not held (${this.sha.slice(0, 12) || 'none'} are)`);
    }
  }
}

let held: Held | null = null;

async function handle(req: ModelRequest): Promise<unknown> {
  if (req.op === 'init') {
    const { init } = req;
    await selectBackend(init.backend);
    const task = getTask(init.task);
    const { model, cost } = buildCheckedModel(init.spec, task.inputShape, task.head, init.modelSeed, init.budget, init.batch);
    held = new Held(model, task, validationData(task, init.validationSeed, init.validationSamples), init.validationSeed);
    const params = await getFlatParams(model);
    held.params = params;
    return { params, topology: topologyJson(model), cost } satisfies ModelBuilt;
  }
  const h = held;
  if (!h) throw new Error(`${req.op}: the model is not built yet (init first)`);
  switch (req.op) {
    case 'evaluate':
      h.load(req.sha, req.params);
      return evaluate(h.model, h.validation, h.task.head);
    case 'evaluateStep': {
      h.load(req.sha, req.params);
      const base = h.params!;
      const p = new Float32Array(base.length);
      for (let i = 0; i < p.length; i++) p[i] = base[i]! + req.sum[i]! * req.scale;
      setFlatParams(h.model, p);
      try {
        return await evaluate(h.model, h.validation, h.task.head) satisfies Evaluation;
      } finally {
        setFlatParams(h.model, base);
      }
    }
    case 'lossGradient':
      h.load(req.sha, req.params);
      return lossGradient(h.model, h.validation, h.task.head);
    case 'save': {
      h.load(req.sha, req.params);
      const saved = await saveModelFiles(h.model, req.dir);
      const onnx = await checkOnnx(await fs.readFile(saved.onnx), h.model, h.validation.features, h.validation.count, h.task.inputShape);
      return { onnx } satisfies ModelSaved;
    }
    case 'examples': {
      h.load(req.sha, req.params);
      // Drawn as the validation data is, from a seed of their own: the card shows none of it.
      const v = h.task.generateValidation(`${h.seed}/card-examples`, req.count);
      const input = h.task.features(v.x, v.count);
      const per = input.length / v.count, perRaw = v.x.length / v.count;
      const out = tf.tidy(() => (h.model.predict(tf.tensor(input, [v.count, ...h.task.inputShape])) as tf.Tensor).dataSync() as Float32Array);
      const perOut = out.length / v.count;
      return Array.from({ length: v.count }, (_, i): ModelExample => ({
        raw: v.x.slice(i * perRaw, (i + 1) * perRaw), input: input.slice(i * per, (i + 1) * per), output: out.slice(i * perOut, (i + 1) * perOut),
      }));
    }
  }
}

function failure(err: unknown): ModelFailure {
  const e = err instanceof Error ? err : new Error(String(err));
  return e instanceof InvalidFieldError
    ? { name: e.name, message: e.message, field: { field: e.field, expected: e.expected, got: e.got } }
    : { name: e.name, message: e.message };
}

const rawVectors = new RawVectors(process.stdin);

/** The request with its vectors read (their reads asked for now, in the order messages came). */
function withVectors(message: Record<string, unknown>): Promise<ModelRequest> {
  const reads = RAW_VECTOR_FIELDS.flatMap((field) => {
    const v = message[field] as { rawBytes?: unknown } | undefined;
    return typeof v?.rawBytes === 'number' ? [rawVectors.read(v.rawBytes).then((vector) => { message[field] = vector; })] : [];
  });
  return Promise.all(reads).then(() => message as unknown as ModelRequest);
}

// Requests are handled one at a time, in order: the model holds one set of parameters.
let queue: Promise<void> = Promise.resolve();
process.on('message', (message: Record<string, unknown>) => {
  const request = withVectors(message);
  const id = message.id as number;
  queue = queue.then(async () => {
    let reply: ModelReply;
    try {
      reply = { id, ok: await handle(await request) };
    } catch (err) {
      reply = { id, error: failure(err) };
    }
    process.send!(reply);
  });
});
process.on('disconnect', () => process.exit(0));
