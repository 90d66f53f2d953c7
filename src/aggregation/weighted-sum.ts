/**
 * A streaming weighted sum: updates are folded in as they arrive, so the coordinator holds one
 * vector per round, not one per trainer. Secure aggregation hands the same object its unmasked
 * group sums (already weighted), so every strategy sees one input type.
 */
import { UpdateLengthError } from '../errors.js';

/** Sum of `weight_i * delta_i` and of the weights. */
export class WeightedSum {
  readonly sum: Float32Array;
  private total = 0;
  private n = 0;

  constructor(readonly length: number) {
    this.sum = new Float32Array(length);
  }

  /** Sum of the weights (sample counts) folded in. */
  get totalWeight(): number {
    return this.total;
  }

  /** Updates folded in. */
  get count(): number {
    return this.n;
  }

  /** Adds `weight * delta`. */
  add(delta: Float32Array, weight: number): void {
    if (delta.length !== this.length) throw new UpdateLengthError(this.length, delta.length);
    if (!(weight > 0) || !Number.isFinite(weight)) throw new RangeError(`weight: expected a positive number, got ${weight}`);
    const s = this.sum;
    for (let i = 0; i < s.length; i++) s[i]! += weight * delta[i]!;
    this.total += weight;
    this.n++;
  }

  /** Adds a sum that is already weighted (e.g. an unmasked group sum) with its total weight. */
  addWeighted(weightedSum: Float32Array, totalWeight: number, members: number): void {
    if (weightedSum.length !== this.length) throw new UpdateLengthError(this.length, weightedSum.length);
    const s = this.sum;
    for (let i = 0; i < s.length; i++) s[i]! += weightedSum[i]!;
    this.total += totalWeight;
    this.n += members;
  }

  /** The weighted mean (a new vector); zeros when nothing was added. */
  mean(): Float32Array {
    const out = new Float32Array(this.length);
    if (this.total === 0) return out;
    const k = 1 / this.total;
    const s = this.sum;
    for (let i = 0; i < out.length; i++) out[i] = s[i]! * k;
    return out;
  }
}
