/**
 * Contribution scoring without seeing an update: group scores to node qualities (least squares
 * over group memberships with shrinkage), reliability, EMA, and u16 weights as the chain wants.
 */
export { ContributionEstimator, type GroupObservation } from './contribution.js';
export { Scoreboard, type NodeScore, type ScoredGroup } from './scoreboard.js';
export { Ema, normalizeMaxWeight, toU16Weights, type U16Weights, type WeightRules } from './weights.js';
export { spearman } from './spearman.js';

export { firstOrderScores } from './first-order.js';
export { roundScale, scoreStep } from './first-order.js';
export { type GroupEvaluation } from './scoreboard.js';
