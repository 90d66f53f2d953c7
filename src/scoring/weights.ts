/**
 * Scores to the u16 weights the chain takes, exactly as the Bittensor Python SDK makes them
 * (`bittensor/utils/weight_utils.py`, which runs on numpy 2):
 * - `process_weights` (exclude quantile 0): scores become float32; with none above zero, or
 *   fewer neurons than MinAllowedWeights, every neuron gets 1/n; with fewer non-zero scores than
 *   MinAllowedWeights, every neuron gets 1e-5 plus its score (float64); otherwise the non-zero
 *   ones go on (float32);
 * - `normalize_max_weight`: weights summing to 1, none above the subnet's MaxWeightsLimit;
 * - `convert_weights_and_uids_for_emit`: divide by the max, round(w x 65535) half to even,
 *   drop zeros.
 * numpy's arithmetic is followed to the bit: float32 operations round to float32
 * (`Math.fround`), a Python float meeting a float32 becomes float32 (NEP 50), and sums are
 * numpy's pairwise sums. `test/fixtures/sdk-weights.json` holds the SDK's own answers
 * (`scripts/sdk-weights-oracle.py`), which the tests compare with.
 */

/** Arithmetic in one of numpy's float types: float32 rounds every result, float64 does not. */
interface FloatType {
  r: (x: number) => number;
}
const F32: FloatType = { r: Math.fround };
const F64: FloatType = { r: (x) => x };

/** numpy's pairwise summation (`pairwise_sum` in loops_utils.h.src), accumulating in `t`. */
function pairwiseSum(t: FloatType, a: readonly number[], start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res = t.r(res + a[start + i]!);
    return res;
  }
  if (n <= 128) {
    const r = a.slice(start, start + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = t.r(r[j]! + a[start + i + j]!);
    let res = t.r(t.r(t.r(r[0]! + r[1]!) + t.r(r[2]! + r[3]!)) + t.r(t.r(r[4]! + r[5]!) + t.r(r[6]! + r[7]!)));
    for (; i < n; i++) res = t.r(res + a[start + i]!);
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return t.r(pairwiseSum(t, a, start, n2) + pairwiseSum(t, a, start + n2, n - n2));
}

const npSum = (t: FloatType, a: readonly number[]): number => pairwiseSum(t, a, 0, a.length);

/**
 * The SDK's normalize_max_weight in float type `t`: weights summing to 1, none above `limit`
 * (a Python float) where that is possible.
 */
function normalizeIn(t: FloatType, x: readonly number[], limit: number): number[] {
  const eps = t.r(1e-7);
  const lim = t.r(limit);
  const n = x.length;
  const weights = [...x];
  const values = [...x].sort((a, b) => a - b);
  if (npSum(t, x) === 0 || n * limit <= 1) return x.map(() => t.r(1 / n));
  const vsum = npSum(t, values);
  const estimation = values.map((v) => t.r(v / vsum));
  if (Math.max(...estimation) <= lim) {
    const wsum = npSum(t, weights);
    return weights.map((w) => t.r(w / wsum));
  }
  const cumsum: number[] = [];
  estimation.reduce((s, v, i) => (cumsum[i] = t.r(s + v)), 0);
  const estimationSum = estimation.map((e, i) => t.r((n - i - 1) * e));
  const nValues = estimation.filter((e, i) => t.r(e / t.r(t.r(estimationSum[i]! + cumsum[i]!) + eps)) < lim).length;
  // cumsum[n_values - 1] in Python: index -1 is the last.
  const c = cumsum[nValues === 0 ? n - 1 : nValues - 1]!;
  // n_values is a numpy int64, so the denominator is a numpy float64 and, from here, the
  // cutoff is float64; the clipped entries take it back as float32.
  const cutoffScale = t.r(t.r(lim * c) - eps) / (1 - limit * (n - nValues));
  const cutoff = cutoffScale * vsum;
  const clipped = weights.map((w) => (w > cutoff ? t.r(cutoff) : w));
  const csum = npSum(t, clipped);
  return clipped.map((w) => t.r(w / csum));
}

/** The SDK's normalize_max_weight on float32 values. */
export function normalizeMaxWeight(x: readonly number[], limit = 0.1): number[] {
  return normalizeIn(F32, x.map(Math.fround), limit);
}

/** Python's round(): to the nearest integer, half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** What `set_weights` (or a commit) carries. */
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

/** The SDK's convert_weights_and_uids_for_emit. */
function emit(uids: readonly number[], weights: readonly number[]): U16Weights {
  if (weights.reduce((s, w) => s + w, 0) === 0) return { uids: [], values: [] };
  const max = Math.max(...weights);
  const out: U16Weights = { uids: [], values: [] };
  weights.forEach((w, i) => {
    const v = roundHalfEven((w / max) * 65535);
    if (v !== 0) {
      out.uids.push(uids[i]!);
      out.values.push(v);
    }
  });
  return out;
}

/**
 * Scores of a subnet's neurons to u16 weights, as the SDK's `process_weights` then
 * `convert_weights_and_uids_for_emit` make them. `scores` holds one entry per candidate uid
 * (the SDK's metagraph is every uid; a validator leaves its own out); padding, when the rules
 * call for it, covers the candidates. Negative scores count as 0.
 */
export function toU16Weights(scores: ReadonlyMap<number, number>, rules: WeightRules): U16Weights {
  const uids = [...scores.keys()].sort((a, b) => a - b);
  const raw = uids.map((u) => scores.get(u)!);
  if (raw.some((v) => !Number.isFinite(v))) throw new RangeError('weights: expected finite scores');
  const w = raw.map((v) => Math.fround(Math.max(0, v)));
  const n = uids.length;
  if (n === 0) return { uids: [], values: [] };
  const limit = rules.maxWeightsLimit / 65535;
  const nonZero = w.map((v, i) => i).filter((i) => w[i]! > 0);
  if (nonZero.length === 0 || n < rules.minAllowedWeights) return emit(uids, uids.map(() => 1 / n));
  if (nonZero.length < rules.minAllowedWeights) {
    const padded = w.map((v) => (v > 0 ? 1e-5 + v : 1e-5));
    return emit(uids, normalizeIn(F64, padded, limit));
  }
  return emit(nonZero.map((i) => uids[i]!), normalizeIn(F32, nonZero.map((i) => w[i]!), limit));
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
