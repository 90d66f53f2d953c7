/**
 * Scores to the u16 weights `set_weights` takes, as the Bittensor Python SDK makes them
 * (`bittensor.utils.weight_utils`): `normalize_max_weight` caps each normalised weight at the
 * subnet's MaxWeightsLimit, then `convert_weights_and_uids_for_emit` rejects negatives, returns
 * nothing when the sum is 0, divides by the max, rounds w * 65535 and drops zeros. The runtime
 * also wants at least min(MinAllowedWeights, N) entries: when too few are non-zero, the next
 * best uids are kept with the smallest non-zero value (1), which the runtime accepts.
 */

/** The SDK's normalize_max_weight: weights summing to 1, none above `limit` where possible. */
export function normalizeMaxWeight(x: readonly number[], limit = 0.1): number[] {
  const eps = 1e-7;
  const n = x.length;
  const total = x.reduce((s, v) => s + v, 0);
  if (total === 0 || n * limit <= 1) return x.map(() => 1 / n);
  const values = [...x].sort((a, b) => a - b);
  const vsum = values.reduce((s, v) => s + v, 0);
  const estimation = values.map((v) => v / vsum);
  if (Math.max(...estimation) <= limit) return x.map((v) => v / total);
  const cumsum: number[] = [];
  estimation.reduce((s, v, i) => (cumsum[i] = s + v), 0);
  const estimationSum = estimation.map((e, i) => (n - i - 1) * e);
  const nValues = estimation.filter((e, i) => e / (estimationSum[i]! + cumsum[i]! + eps) < limit).length;
  const cutoffScale = (limit * cumsum[nValues - 1]! - eps) / (1 - limit * (n - nValues));
  const cutoff = cutoffScale * vsum;
  const clipped = x.map((v) => (v > cutoff ? cutoff : v));
  const csum = clipped.reduce((s, v) => s + v, 0);
  return clipped.map((v) => v / csum);
}

/** What `set_weights` is given. */
export interface U16Weights {
  uids: number[];
  values: number[];
}

/** Options from the subnet's hyper-parameters. */
export interface WeightRules {
  /** MaxWeightsLimit as the runtime stores it (u16, 65535 = 1.0). */
  maxWeightsLimit: number;
  /** MinAllowedWeights. */
  minAllowedWeights: number;
}

/** Scores by uid to u16 weights the runtime accepts. Negative scores count as 0. */
export function toU16Weights(scores: ReadonlyMap<number, number>, rules: WeightRules): U16Weights {
  const uids = [...scores.keys()].sort((a, b) => a - b);
  const raw = uids.map((u) => Math.max(0, scores.get(u)!));
  if (raw.some((v) => !Number.isFinite(v))) throw new RangeError('weights: expected finite scores');
  if (uids.length === 0 || raw.every((v) => v === 0)) return { uids: [], values: [] };
  const norm = normalizeMaxWeight(raw, rules.maxWeightsLimit / 65535);
  const max = Math.max(...norm);
  const values = norm.map((w) => Math.round((w / max) * 65535));
  const kept = uids.map((u, i) => ({ u, v: values[i]!, s: raw[i]! })).filter((e) => e.v > 0);
  const need = Math.min(rules.minAllowedWeights, uids.length);
  if (kept.length < need) {
    const rest = uids.map((u, i) => ({ u, v: 1, s: raw[i]! })).filter((e) => !kept.some((k) => k.u === e.u)).sort((a, b) => b.s - a.s || a.u - b.u);
    kept.push(...rest.slice(0, need - kept.length));
  }
  kept.sort((a, b) => a.u - b.u);
  return { uids: kept.map((e) => e.u), values: kept.map((e) => e.v) };
}

/** An exponential moving average per key. */
export class Ema {
  private readonly values = new Map<string, number>();

  /** `alpha` is the weight of a new observation. */
  constructor(private readonly alpha = 0.3) {}

  update(key: string, value: number): number {
    const prev = this.values.get(key);
    const next = prev === undefined ? value : (1 - this.alpha) * prev + this.alpha * value;
    this.values.set(key, next);
    return next;
  }

  get(key: string): number | undefined {
    return this.values.get(key);
  }

  entries(): [string, number][] {
    return [...this.values];
  }
}
