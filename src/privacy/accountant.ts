/**
 * Rényi differential privacy (Mironov 2017) of the (subsampled) Gaussian mechanism, composed
 * over rounds, and its conversion to (epsilon, delta), as TensorFlow Privacy's and Google's
 * dp_accounting RdpAccountant compute them:
 *
 * - RDP of order alpha of one Gaussian mechanism with noise multiplier sigma (noise standard
 *   deviation over the L2 sensitivity): alpha / (2 sigma^2).
 * - Sampled with probability q < 1 (Mironov, Talwar and Zhang 2019, integer orders):
 *   log A_alpha = log sum_{k=0..alpha} C(alpha, k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2)),
 *   RDP = log A_alpha / (alpha - 1). Only integer orders are used for q < 1: epsilon comes out
 *   at most slightly above dp_accounting's, which also tries fractional orders.
 * - Composition adds RDP order by order.
 * - epsilon = min over orders of rdp + log((alpha-1)/alpha) - (log delta + log alpha) / (alpha-1)
 *   (Balle et al. 2020; dp_accounting's compute_epsilon).
 */

/** Orders tried: 1.1 to 10.9 by 0.1 (the closed form allows any for q = 1), and 11 to 256. */
export const ORDERS: readonly number[] = [
  ...Array.from({ length: 99 }, (_, i) => Math.round((1.1 + i * 0.1) * 10) / 10),
  ...Array.from({ length: 246 }, (_, i) => 11 + i),
];

/** log(exp(a) + exp(b)) without overflow. */
function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const hi = Math.max(a, b);
  return hi + Math.log1p(Math.exp(Math.min(a, b) - hi));
}

/** RDP of order `alpha` of one Gaussian mechanism with noise multiplier `sigma`, sampled with probability `q`. */
export function rdpSampledGaussian(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (alpha === Infinity) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (!Number.isInteger(alpha)) return NaN;
  // log C(alpha, k), built term by term.
  let logCoef = 0;
  let logA = -Infinity;
  for (let k = 0; k <= alpha; k++) {
    if (k > 0) logCoef += Math.log(alpha - k + 1) - Math.log(k);
    logA = logAdd(logA, logCoef + k * Math.log(q) + (alpha - k) * Math.log1p(-q) + (k * k - k) / (2 * sigma * sigma));
  }
  return logA / (alpha - 1);
}

/** The (epsilon, delta) guarantee of RDP values `rdp` at `orders`: the smallest epsilon, and the order that gives it. */
export function epsilonOf(orders: readonly number[], rdp: readonly number[], delta: number): { epsilon: number; order: number } {
  let best = { epsilon: Infinity, order: NaN };
  orders.forEach((a, i) => {
    const r = rdp[i]!;
    if (!Number.isFinite(r) || a <= 1) return;
    // dp_accounting: a guarantee this small is epsilon 0 outright.
    const eps = delta * delta + Math.expm1(-r) > 0 ? 0 : r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    if (eps < best.epsilon) best = { epsilon: Math.max(0, eps), order: a };
  });
  return best;
}

/** One round's mechanism: the noise multiplier the released sums carried, and the sampling probability. */
export interface PrivacyStep {
  noiseMultiplier: number;
  q: number;
}

/** Composes rounds of the (sampled) Gaussian mechanism and says what they spent. */
export class RdpAccountant {
  private readonly rdp: number[];
  private count = 0;

  constructor(readonly orders: readonly number[] = ORDERS) {
    this.rdp = orders.map(() => 0);
  }

  /** Adds `times` rounds of `step`. */
  compose(step: PrivacyStep, times = 1): void {
    this.orders.forEach((a, i) => {
      const r = rdpSampledGaussian(step.q, step.noiseMultiplier, a);
      // An order the mechanism has no value at (fractional, q < 1) is no longer usable.
      this.rdp[i] = Number.isNaN(r) ? NaN : this.rdp[i]! + times * r;
    });
    this.count += times;
  }

  /** Rounds composed. */
  get rounds(): number {
    return this.count;
  }

  /** Epsilon at `delta` of everything composed. */
  epsilon(delta: number): number {
    const idx = this.orders.map((_, i) => i).filter((i) => !Number.isNaN(this.rdp[i]!));
    return epsilonOf(idx.map((i) => this.orders[i]!), idx.map((i) => this.rdp[i]!), delta).epsilon;
  }

  /** Epsilon at `delta` if `step` were composed once more (does not compose it). */
  epsilonAfter(step: PrivacyStep, delta: number): number {
    const next = new RdpAccountant(this.orders);
    this.orders.forEach((_, i) => { next.rdp[i] = this.rdp[i]!; });
    next.compose(step);
    return next.epsilon(delta);
  }
}
