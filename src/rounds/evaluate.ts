/**
 * Phase 3 of a round, evaluate and score: what each sum the coordinator saw is worth. Takes the
 * collected sums (a secure group's unmasked sum, or in plaintext one member's update), the
 * gradient of the validation loss at the global model, and the global model; gives one scored
 * group per sum: its first-order score (-grad . mean update, additive over members, so that
 * members' qualities can be estimated from group scores, `scoring/`), the round's scale, the
 * samples each dataset node contributed, and for secure groups the mean update applied alone and
 * evaluated on the validation data.
 */
import { roundScale, scoreStep, type GroupEvaluation, type ScoredGroup } from '../scoring/index.js';
import type { GroupResult } from '../secagg/index.js';
import type { Task } from '../wire/index.js';
import type { Logger } from '../util/index.js';
import type { Evaluation } from '../model/index.js';
import type { GlobalModel } from './global-model.js';
import type { Round } from './round.js';

/** A sum the coordinator saw and its first-order score. */
export interface EvaluatedSum {
  members: string[];
  score: number;
  norm2: number;
  /** Secure groups: the mean update applied alone, evaluated. */
  evaluated?: GroupEvaluation;
}

/**
 * Secure rounds: an unmasked group's mean update, scored and evaluated against `base` (the
 * global model's own evaluation this round).
 */
export async function evaluateGroup(r: GroupResult, grad: Float32Array, global: GlobalModel, base: Evaluation): Promise<EvaluatedSum> {
  return { members: r.members, ...scoreStep(grad, r.weightedSum, 1 / r.totalWeight), evaluated: await global.evaluateStep(r.weightedSum, 1 / r.totalWeight, base) };
}

/** Plaintext rounds: each reporter's update as a group of one, scored as it arrived. */
export function plainSums(scores: ReadonlyMap<string, { score: number; norm2: number }>, reporters: ReadonlySet<string>): EvaluatedSum[] {
  return [...scores].filter(([id]) => reporters.has(id)).map(([id, step]) => ({ members: [id], ...step }));
}

/**
 * The round's scored groups: members with their samples, the dataset nodes that fed them, the
 * round's scale and the job's task weight. Sums with a non-finite score (a diverged model says
 * nothing about anyone) are left out.
 */
export function scoreGroups(sums: readonly EvaluatedSum[], grad: Float32Array, round: Round<Task>, taskWeight: number, log: Logger): ScoredGroup[] {
  const roundKey = `${round.jobId}/${round.round}/${round.attempt}`;
  const finite = sums.filter((g) => Number.isFinite(g.score) && Number.isFinite(g.norm2));
  if (finite.length < sums.length) log.warn('groups with non-finite scores left unscored', { round: roundKey, groups: sums.length - finite.length });
  const scale = roundScale(grad, finite.map((g) => g.norm2));
  return finite.map((g) => {
    const members = g.members.map((id) => ({ id, samples: round.member(id)?.numSamples ?? 1 }));
    const bySource = new Map<string, number>();
    for (const id of g.members) for (const s of round.member(id)?.task.shards ?? []) bySource.set(s.datasetNodeId, (bySource.get(s.datasetNodeId) ?? 0) + s.numSamples);
    return {
      round: roundKey, members, datasets: [...bySource].map(([id, samples]) => ({ id, samples })), score: g.score, scale, weight: taskWeight,
      ...(g.evaluated ? { evaluated: g.evaluated } : {}),
    };
  });
}
