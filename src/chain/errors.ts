/**
 * What each `set_weights` rule error of pallet subtensor means to an operator, and what to do.
 * Every one of these was triggered on the real runtime (shared/chain/README.md).
 */

const EXPLANATIONS: Readonly<Record<string, string>> = {
  SettingWeightsTooFast: 'weights were set too recently: wait WeightsSetRateLimit blocks since the last update',
  IncorrectWeightVersionKey: 'the version key is below the subnet\'s WeightsVersionKey: upgrade the validator',
  NeuronNoValidatorPermit: 'this hotkey has no validator permit on the subnet: it needs more stake to be among the top validators',
  HotKeyNotRegisteredInSubNet: 'this hotkey is not registered on the subnet',
  DuplicateUids: 'the same uid appears twice in the weights',
  UidVecContainInvalidOne: 'a uid in the weights does not exist on the subnet',
  WeightVecLengthIsLow: 'fewer weights than the subnet\'s MinAllowedWeights',
  WeightVecNotEqualSize: 'uids and weights differ in length',
  CommitRevealEnabled: 'commit-reveal is on for this subnet: weights must be committed, then revealed',
  NotEnoughStakeToSetWeights: 'the hotkey\'s stake is below the subnet\'s stake threshold',
  SubNetworkDoesNotExist: 'the subnet does not exist',
  MaxWeightExceeded: 'a weight exceeds the subnet\'s MaxWeightsLimit',
  RevealTooEarly: 'the reveal is too early: wait for the reveal epoch',
  ExpiredWeightCommit: 'the commit expired before it was revealed',
  InvalidRevealCommitHashNotMatch: 'the revealed weights do not match the commit',
  NoWeightsCommitFound: 'there is no commit to reveal',
};

/** A weight extrinsic the runtime refused. */
export class ChainRuleError extends Error {
  constructor(readonly runtimeError: string, readonly action: string) {
    super(`${action} refused by the chain (${runtimeError}): ${EXPLANATIONS[runtimeError] ?? 'see pallet subtensor\'s errors'}`);
    this.name = 'ChainRuleError';
  }
}

/** The operator's explanation of a runtime error name, if known. */
export function explainRuntimeError(name: string): string | undefined {
  return EXPLANATIONS[name];
}
