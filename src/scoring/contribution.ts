/**
 * Estimating each node's contribution from the scores of the groups it was in, never from its
 * own update (which secure aggregation hides).
 *
 * Each evaluated group g of members M_g scored s_g (e.g. validation-loss improvement of the
 * group's mean update). Model: s_g = sum_{i in M_g} a_gi q_i + noise, with a_gi the member's
 * share of the group's samples (1/|M_g| for equal shares). The estimate is ridge least squares
 * with shrinkage towards the mean group score mu:
 *
 *   q = argmin  sum_g w_g (s_g - sum_i a_gi q_i)^2  +  lambda sum_i (q_i - mu)^2
 *
 * so a node seen in few groups stays near mu, and one seen in many is pinned down by them.
 * Groups are re-drawn every round, so the membership matrix gains rank as rounds go by. Solved
 * by conjugate gradient on the normal equations: each product touches each membership once,
 * so it scales with the number of memberships, not with nodes squared.
 */

/** One evaluated group. */
export interface GroupObservation {
  /** Members and their shares of the group (shares sum to 1). */
  members: { id: string; share: number }[];
  score: number;
  /** Confidence of the observation (e.g. task difficulty weight); default 1. */
  weight?: number;
  /**
   * The round (job and round) it was evaluated in. Scores of one round are centred on their
   * mean (a per-round fixed effect: how much a round improves the model falls as training
   * converges, and only a group's standing among its round's groups says anything about its
   * members) and divided by `scale`. A round with a single group carries no information and is
   * skipped.
   */
  round?: string;
  /**
   * The round's scale, the same for all its groups (see first-order.ts); without it a round's
   * scores are divided by their standard deviation.
   */
  scale?: number;
}

/** Options of the estimator. */
export interface ContributionOptions {
  /** Shrinkage strength towards the mean (in units of group observations). Default 0.1. */
  lambda?: number;
  /** Keep at most this many most recent observations (a sliding window). Default 5000. */
  window?: number;
}

/** The estimator. */
export class ContributionEstimator {
  private readonly obs: GroupObservation[] = [];
  private readonly lambda: number;
  private readonly window: number;

  constructor(options: ContributionOptions = {}) {
    this.lambda = options.lambda ?? 0.1;
    this.window = options.window ?? 5000;
  }

  /** Adds an evaluated group. */
  observe(o: GroupObservation): void {
    const total = o.members.reduce((s, m) => s + m.share, 0);
    if (!(total > 0) || !Number.isFinite(o.score)) throw new RangeError('group observation: expected positive shares and a finite score');
    if (o.scale !== undefined && !(o.scale > 0 && Number.isFinite(o.scale))) throw new RangeError(`group observation: expected a positive finite round scale, got ${o.scale}`);
    this.obs.push({ ...o, members: o.members.map((m) => ({ id: m.id, share: m.share / total })) });
    if (this.obs.length > this.window) this.obs.splice(0, this.obs.length - this.window);
  }

  /** Observations so far. */
  get count(): number {
    return this.obs.length;
  }

  /** Groups each node was in. */
  appearances(): Map<string, number> {
    const out = new Map<string, number>();
    for (const o of this.obs) for (const m of o.members) out.set(m.id, (out.get(m.id) ?? 0) + 1);
    return out;
  }

  /** Scores centred and scaled per round (NaN where a round has one group). */
  private standardised(): number[] {
    const byRound = new Map<string, number[]>();
    this.obs.forEach((o) => {
      if (o.round !== undefined) byRound.set(o.round, [...(byRound.get(o.round) ?? []), o.score]);
    });
    const stats = new Map([...byRound].map(([r, xs]) => {
      const m = xs.reduce((a, b) => a + b, 0) / xs.length;
      const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
      return [r, { m, sd, n: xs.length }] as const;
    }));
    return this.obs.map((o) => {
      if (o.round === undefined) return o.score;
      const st = stats.get(o.round)!;
      if (st.n < 2) return NaN;
      const scale = o.scale ?? st.sd;
      return scale > 0 ? (o.score - st.m) / scale : 0;
    });
  }

  /** The current estimate of every node seen. */
  estimate(): Map<string, number> {
    const ids = [...this.appearances().keys()].sort();
    const index = new Map(ids.map((id, i) => [id, i]));
    const n = ids.length;
    if (n === 0) return new Map();
    const scores = this.standardised();
    // Rounds with a single group say nothing (NaN after standardising) and are left out.
    let wsum = 0, mu = 0;
    this.obs.forEach((o, k) => {
      if (!Number.isFinite(scores[k]!)) return;
      const w = o.weight ?? 1;
      wsum += w;
      mu += w * scores[k]!;
    });
    mu = wsum > 0 ? mu / wsum : 0;
    const rows = this.obs.map((o, k) => ({ w: o.weight ?? 1, s: scores[k]!, m: o.members.map((x) => ({ i: index.get(x.id)!, a: x.share })) }))
      .filter((r) => Number.isFinite(r.s));
    // (A^T W A + lambda I) q = A^T W s + lambda mu 1
    const apply = (q: Float64Array): Float64Array => {
      const out = new Float64Array(n);
      for (const r of rows) {
        let pred = 0;
        for (const { i, a } of r.m) pred += a * q[i]!;
        for (const { i, a } of r.m) out[i]! += r.w * a * pred;
      }
      for (let i = 0; i < n; i++) out[i]! += this.lambda * q[i]!;
      return out;
    };
    const b = new Float64Array(n).fill(this.lambda * mu);
    for (const r of rows) for (const { i, a } of r.m) b[i]! += r.w * a * r.s;
    const q = new Float64Array(n).fill(mu);
    const Aq = apply(q);
    const res = b.map((v, i) => v - Aq[i]!);
    const p = Float64Array.from(res);
    let rr = res.reduce((s, v) => s + v * v, 0);
    for (let it = 0; it < 10 * n && rr > 1e-24; it++) {
      const Ap = apply(p);
      const alpha = rr / p.reduce((s, v, i) => s + v * Ap[i]!, 0);
      for (let i = 0; i < n; i++) {
        q[i]! += alpha * p[i]!;
        res[i]! -= alpha * Ap[i]!;
      }
      const rr2 = res.reduce((s, v) => s + v * v, 0);
      const beta = rr2 / rr;
      rr = rr2;
      for (let i = 0; i < n; i++) p[i] = res[i]! + beta * p[i]!;
    }
    return new Map(ids.map((id, i) => [id, q[i]!]));
  }
}
