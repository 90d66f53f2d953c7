/**
 * Bittensor: reading the subnet's metagraph and setting the validator's weights on a subtensor
 * node with @polkadot/api. Scores become u16 weights in src/scoring/weights.ts.
 */
export { connectSubtensor, readMetagraph, type Metagraph, type Neuron, type WeightHyperparams } from './subtensor.js';
export { ExtrinsicSender, publishWeights, type PublishOptions } from './weights-publisher.js';
export { ChainRuleError, explainRuntimeError } from './errors.js';
export { commitHash, commitWeights, revealPending, PendingCommitStore, type PendingCommit, type RevealOutcome } from './commit-reveal.js';

export { DEFAULT_WALLET_PATH, newHotkeyFile, walletHotkeyPath } from './keyfile.js';
export { hotkeySecret, loadSigner, WALLET_PASSWORD_ENV, type HotkeySource } from './hotkey.js';
export { startChainPublisher, type ChainPublisher, type ChainPublisherOptions, type Publication } from './publisher.js';
