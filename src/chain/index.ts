/**
 * Bittensor: reading the subnet's metagraph and setting the validator's weights on a subtensor
 * node with @polkadot/api. Scores become u16 weights in src/scoring/weights.ts.
 */
export { connectSubtensor, epochOf, readMetagraph, reasonOf, type Metagraph, type Neuron, type WeightHyperparams } from './subtensor.js';
export { ExtrinsicSender, publishWeights, type PublishOptions } from './weights-publisher.js';
export { ChainRuleError, explainRuntimeError } from './errors.js';
export { commitHash, commitWeights, revealDue, PendingCommitStore, type PendingCommit, type RevealClock, type RevealOutcome } from './commit-reveal.js';

export { DEFAULT_WALLET_PATH, newHotkeyFile, walletHotkeyPath } from './keyfile.js';
export { hotkeySecret, loadKeyringPair, loadSigner, WALLET_PASSWORD_ENV, type HotkeySource } from './hotkey.js';
export { WeightsLoop, type Publication, type WeightsLoopOptions, type WeightsMode, type WeightsStatus } from './weights-loop.js';
export { commitTimelocked, crv3Payload, crv4Payload, readBeacon, revealBlockOf, revealOutcome, revealRound, timelockedCall, type Beacon, type TimelockedCommit } from './timelocked-commit.js';
export { QUICKNET, testBeacon, timelockDecrypt, timelockEncrypt, verifyBeaconSignature } from './timelock.js';
export { announceAxon, axonAddress, encodeIp, readNeuronEndpoints, AXON_PROTOCOL, AXON_VERSION, type AxonInfo, type NeuronEndpoint } from './axon.js';
