/**
 * Secure aggregation, SecAgg+ (Bell et al. 2020) with the differencing rule: one constants file
 * both halves share (`constants.ts`: parameters, messages, domains), the node half (`node.ts`),
 * the coordinator half (`coordinator.ts`: one group's state; `secure-aggregation.ts`: a round's
 * groups driven through their stages with timers; `params.ts`: the groups' parameters;
 * `group-history.ts`: groups that never differ by one member), fixed point (`quantize.ts`), and
 * the threads that expand masks off the event loop (`mask-pool.ts`).
 */
export { GroupHistory } from './group-history.js';
export { MaskPool, recycleWords } from './mask-pool.js';
export { SecAggGroup } from './coordinator.js';
export { SecAggNode, type HotkeyBinding } from './node.js';
export { quantBitsFor, quantStep, weightErrorBound, quantErrorBound } from './quantize.js';
export { type SecAggParams, type UnmaskShare } from './constants.js';
export { planGroups, type GroupSettings, type PlanGroupsOptions } from './params.js';
export { SecureAggregation, type FailedGroup, type AwaitResult, type AwaitStage, type SecureAggregationOptions } from './secure-aggregation.js';
export { differByOne, formGroups } from './group-history.js';
export { type GroupResult, type MaskedInput } from './coordinator.js';
export { quantizeWeighted } from './quantize.js';
export { FileSum, MemorySum, SumStorage, type SumWords } from './group-sum.js';
