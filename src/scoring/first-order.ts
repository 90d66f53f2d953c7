/**
 * A round's group scores, from what the coordinator may see: the gradient g of the validation
 * loss at the round's global model, and each group's mean update m_j (the unmasked sum over its
 * weight). A group's score is its first-order loss decrease -g . m_j, which is additive over its
 * members (each member's share of -g . u_i).
 *
 * Rounds differ in scale by orders of magnitude (early rounds move the loss far, late ones
 * little), so the round's scores are divided by a scale that does not depend on how the cohort
 * was grouped: |g| times the root mean square of |m_j|. A score so scaled is a cosine between
 * the steepest descent and the group's step, weighted by the step's size against the round's
 * typical step; it is comparable across rounds. (Dividing by the spread of the round's own
 * scores instead lets the draw of the groups set the scale: with 4 groups a round, that spread
 * mostly says where the worst members fell. `npm run bench -- --only scoring` compares both on
 * the planted federation: with this scale all 20 draws of the groups ranked the 7 bad trainers
 * last from round 45 on, against 18 of 20 by round 60 with the spread.)
 */

/** One round's scores and the scale they share. */
export interface RoundScores {
  /** -g . m_j for each group j. */
  scores: number[];
  /** |g| x rms_j |m_j| (1 when every m_j or g is zero). */
  scale: number;
}

/** One step's score -g . (factor x u) and squared norm |factor x u|^2, in one pass. */
export function scoreStep(grad: Float32Array, update: Float32Array, factor = 1): { score: number; norm2: number } {
  if (update.length !== grad.length) throw new RangeError(`first-order score: expected an update of ${grad.length} values, got ${update.length}`);
  let s = 0, n2 = 0;
  for (let k = 0; k < update.length; k++) {
    const m = update[k]! * factor;
    s -= grad[k]! * m;
    n2 += m * m;
  }
  return { score: s, norm2: n2 };
}

/** The round's scale |g| x rms |m_j| from its steps' squared norms (1 when it is zero). */
export function roundScale(grad: Float32Array, norms2: readonly number[]): number {
  let g2 = 0;
  for (let k = 0; k < grad.length; k++) g2 += grad[k]! * grad[k]!;
  const scale = Math.sqrt(g2) * Math.sqrt(norms2.reduce((a, b) => a + b, 0) / Math.max(1, norms2.length));
  return scale > 0 && Number.isFinite(scale) ? scale : 1;
}

/** Scores the means of one round's groups against the validation-loss gradient. */
export function firstOrderScores(grad: Float32Array, means: readonly Float32Array[]): RoundScores {
  const steps = means.map((m) => scoreStep(grad, m));
  return { scores: steps.map((s) => s.score), scale: roundScale(grad, steps.map((s) => s.norm2)) };
}
