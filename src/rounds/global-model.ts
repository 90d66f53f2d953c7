/**
 * A job's global model as the coordinator holds it: the flat parameters trainers start a round
 * from (with their bytes and digest, served in chunks), and the validation data only the
 * coordinator has, drawn from a seed no trainer ever sees. Evaluations of the model and of one
 * group's mean update applied alone are what the evaluate phase scores with.
 */
import type * as tf from '@tensorflow/tfjs';
import { evaluate, getFlatParams, lossGradient, setFlatParams, type Dataset, type Evaluation } from '../model/index.js';
import type { GroupEvaluation } from '../scoring/index.js';
import type { TaskDefinition } from '../tasks/index.js';
import { float32ToBytes, sha256 } from '../wire/index.js';

/** Validation data of `task` drawn from `seed`, features extracted. */
function validationData(task: TaskDefinition, seed: string, samples: number): Dataset {
  const v = task.generateValidation(seed, samples);
  return { count: v.count, features: task.features(v.x, v.count), labels: v.y, keypoints: v.keypoints };
}

/** The global parameters of a job and the data it is judged on. */
export class GlobalModel {
  private params!: Float32Array;
  private paramBytes!: Buffer;
  private digest = '';
  private validation: Dataset;
  /** The evaluation of the parameters with digest `sha` (evaluated once per model). */
  private cached: { sha: string; ev: Evaluation } | null = null;

  private constructor(private readonly model: tf.LayersModel, private readonly task: TaskDefinition, validationSeed: string, private readonly validationSamples: number) {
    this.validation = validationData(task, validationSeed, validationSamples);
  }

  /** The model's initial parameters and validation data drawn from `validationSeed`. */
  static async create(model: tf.LayersModel, task: TaskDefinition, validationSeed: string, validationSamples: number): Promise<GlobalModel> {
    const g = new GlobalModel(model, task, validationSeed, validationSamples);
    g.set(await getFlatParams(model));
    return g;
  }

  /** Draws the validation data again from another seed (a resumed job keeps the seed it ran with). */
  reseedValidation(seed: string): void {
    this.validation = validationData(this.task, seed, this.validationSamples);
    this.cached = null;
  }

  /** Replaces the global parameters. */
  set(params: Float32Array): void {
    this.params = params;
    this.paramBytes = Buffer.from(float32ToBytes(params));
    this.digest = sha256(this.paramBytes).toString('hex');
  }

  /** The global parameters (not a copy: callers must not write to them). */
  get current(): Float32Array {
    return this.params;
  }

  get paramCount(): number {
    return this.params.length;
  }

  /** The parameters as little-endian float32 bytes, as trainers download them. */
  get bytes(): Buffer {
    return this.paramBytes;
  }

  /** Hex sha256 of {@link bytes}. */
  get sha256(): string {
    return this.digest;
  }

  /** Loss and task metric of the global model on the validation data. */
  async evaluate(): Promise<Evaluation> {
    // The same model is evaluated at the end of a round and again as the base of the next
    // round's group evaluations: once is enough.
    if (this.cached?.sha === this.digest) return this.cached.ev;
    setFlatParams(this.model, this.params);
    const ev = await evaluate(this.model, this.validation, this.task.head);
    this.cached = { sha: this.digest, ev };
    return ev;
  }

  /**
   * How the validation loss and the task metric change when only `sum x scale` (a group's mean
   * update) is applied to the global model, against `base`, the global model's evaluation.
   */
  async evaluateStep(sum: Float32Array, scale: number, base: Evaluation): Promise<GroupEvaluation> {
    const p = new Float32Array(this.params.length);
    for (let i = 0; i < p.length; i++) p[i] = this.params[i]! + sum[i]! * scale;
    setFlatParams(this.model, p);
    try {
      const ev = await evaluate(this.model, this.validation, this.task.head);
      return { lossChange: ev.loss - base.loss, metricChange: ev.accuracy - base.accuracy };
    } finally {
      setFlatParams(this.model, this.params);
    }
  }

  /** Gradient of the validation loss at the global parameters (what first-order scores use). */
  async lossGradient(): Promise<Float32Array> {
    setFlatParams(this.model, this.params);
    return lossGradient(this.model, this.validation, this.task.head);
  }

  /** The model with the global parameters in it (for export). */
  exportModel(): tf.LayersModel {
    setFlatParams(this.model, this.params);
    return this.model;
  }
}
