/**
 * A round of a job, as phases, each a file that says what it takes and gives:
 *
 * - plan (`plan.ts`): cohort, shard deal, tasks and leases, SecAgg+ groups;
 * - collect (`collect.ts`): tasks out, updates in (plain or secure) until all reported, members
 *   lost or the deadline, secure groups unmasked;
 * - evaluate and score (`evaluate.ts`): each sum the coordinator saw, scored on validation data;
 * - aggregate and checkpoint (`aggregate.ts`): the strategy's next model, written before the
 *   round is recorded.
 *
 * Beside them: the round's state machine (`round.ts`), cohort selection and shard dealing
 * (`selection.ts`), the registry of live nodes, the global model, and the process that holds a
 * job's model and validation data (`model-host.ts`, `model-process.ts`).
 */
export { aggregateRound, checkpointRound, type Aggregated, type RoundCheckpoint } from './aggregate.js';
export { collectRound, openRound, type Collected, type CollectOptions, type OpenOptions, type OpenRound } from './collect.js';
export { evaluateGroup, plainSums, scoreGroups, type EvaluatedSum } from './evaluate.js';
export { GlobalModel } from './global-model.js';
export { ModelHost, type ModelBuilt, type ModelExample, type ModelHostOptions, type ModelInit, type ModelSaved } from './model-host.js';
export { NodeRegistry, type DatasetRecord, type TrainerRecord } from './node-registry.js';
export { LEASE_GRACE_MS, planRound, type PlanInput, type PlannedMember, type PlanSettings, type RoundPlan } from './plan.js';
export { Round, type MemberState, type RoundPhase, type TrainOutcome } from './round.js';
export { assignShards, selectCohort, type Candidate } from './selection.js';
