/**
 * A job's global model as the coordinator holds it: the flat parameters trainers start a round
 * from (with their bytes and digest, served in chunks). The model itself, and the validation
 * data only the coordinator has (drawn from a seed no trainer ever sees), live in the job's
 * model process (`model-host.ts`): evaluations of the model and of one group's mean update
 * applied alone, what the evaluate phase scores with, are asked of it.
 */
import type { Evaluation } from '../model/index.js';
import type { GroupEvaluation } from '../scoring/index.js';
import { float32ToBytes, sha256 } from '../wire/index.js';
import type { ModelExample, ModelHost, ModelSaved } from './model-host.js';

/** The global parameters of a job and the process that judges them. */
export class GlobalModel {
  private params!: Float32Array;
  private paramBytes!: Buffer;
  private digest = '';
  /** The evaluation of the parameters with digest `sha` (evaluated once per model). */
  private cached: { sha: string; ev: Evaluation } | null = null;

  /** `params`, the model's initial parameters, judged by `host`. */
  constructor(private readonly host: ModelHost, params: Float32Array) {
    this.set(params);
  }

  /** Replaces the global parameters (kept, not copied: nobody writes to them afterwards). */
  set(params: Float32Array): void {
    this.params = params;
    // A view of the parameters, as trainers download them: no second copy of the model.
    this.paramBytes = float32ToBytes(params);
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
    const sha = this.digest;
    const ev = await this.host.evaluate(this.params, sha);
    this.cached = { sha, ev };
    return ev;
  }

  /**
   * How the validation loss and the task metric change when only `sum x scale` (a group's mean
   * update) is applied to the global model, against `base`, the global model's evaluation.
   */
  async evaluateStep(sum: Float32Array, scale: number, base: Evaluation): Promise<GroupEvaluation> {
    const ev = await this.host.evaluateStep(this.params, this.digest, sum, scale);
    return { lossChange: ev.loss - base.loss, metricChange: ev.accuracy - base.accuracy };
  }

  /** Gradient of the validation loss at the global parameters (what first-order scores use). */
  lossGradient(): Promise<Float32Array> {
    return this.host.lossGradient(this.params, this.digest);
  }

  /** `count` samples drawn like the validation data: raw, as input, and what the global model predicts. */
  examples(count: number): Promise<ModelExample[]> {
    return this.host.examples(this.params, this.digest, count);
  }

  /** Writes the model with the global parameters into `dir` (TF.js and ONNX, the ONNX file checked). */
  save(dir: string): Promise<ModelSaved> {
    return this.host.save(this.params, this.digest, dir);
  }
}
