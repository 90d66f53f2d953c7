/**
 * Publishing weights: `set_weights(netuid, uids, values, version_key)` signed by the validator's
 * hotkey, with the runtime's errors turned into {@link ChainRuleError}s an operator can act on.
 * Nonces are tracked locally (a second extrinsic right after a block can otherwise be refused as
 * stale). Commit-reveal subnets take commits instead (commit-reveal.ts, timelocked-commit.ts;
 * weights-loop.ts picks).
 */
import type { ApiPromise } from '@polkadot/api';
import type { KeyringPair } from '@polkadot/keyring/types';
import type { SubmittableExtrinsic } from '@polkadot/api/types';
import { ChainRuleError } from './errors.js';
import type { U16Weights } from '../scoring/index.js';
import type { Metagraph } from './subtensor.js';

/** Sends extrinsics from one account, tracking its nonce. */
export class ExtrinsicSender {
  private nonce: number | null = null;

  constructor(private readonly api: ApiPromise, readonly signer: KeyringPair) {}

  /**
   * Submits `tx` and resolves once it is in a block; throws ChainRuleError on a dispatch error.
   * A refusal for a stale nonce (another process used the key) refetches the nonce and retries once.
   */
  async send(tx: SubmittableExtrinsic<'promise'>, action: string, timeoutMs = 60_000): Promise<{ blockHash: string }> {
    try {
      return await this.sendOnce(tx, action, timeoutMs);
    } catch (err) {
      if (!/stale|outdated|Priority is too low/i.test((err as Error).message)) throw err;
      return this.sendOnce(tx, action, timeoutMs);
    }
  }

  private async sendOnce(tx: SubmittableExtrinsic<'promise'>, action: string, timeoutMs: number): Promise<{ blockHash: string }> {
    if (this.nonce === null) this.nonce = (await this.api.rpc.system.accountNextIndex(this.signer.address)).toNumber();
    const nonce = this.nonce++;
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => finish(new Error(`${action}: not in a block within ${timeoutMs} ms`)), timeoutMs);
      const finish = (err: Error | null, hash?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve({ blockHash: hash! });
      };
      tx.signAndSend(this.signer, { nonce }, ({ status, dispatchError }) => {
        if (!status.isInBlock && !status.isFinalized) return;
        if (dispatchError) {
          const name = dispatchError.isModule ? this.api.registry.findMetaError(dispatchError.asModule).name : dispatchError.toString();
          finish(new ChainRuleError(name, action));
        } else {
          finish(null, (status.isInBlock ? status.asInBlock : status.asFinalized).toString());
        }
      }).catch((e: Error) => {
        // Refused before inclusion (e.g. stale nonce): forget our nonce and report.
        this.nonce = null;
        finish(new Error(`${action}: refused by the node: ${e.message}`));
      });
    });
  }
}

/** Options of {@link publishWeights}. */
export interface PublishOptions {
  netuid: number;
  versionKey: number;
}

/**
 * Sets `weights` on chain for the sender's hotkey. Checks what can be checked first (permit,
 * commit-reveal) so the operator gets the reason without paying for a failed extrinsic.
 */
export async function publishWeights(api: ApiPromise, sender: ExtrinsicSender, metagraph: Metagraph, weights: U16Weights, options: PublishOptions): Promise<{ blockHash: string }> {
  if (weights.uids.length !== weights.values.length) throw new ChainRuleError('WeightVecNotEqualSize', 'set_weights');
  if (metagraph.hyperparams.commitRevealEnabled) throw new ChainRuleError('CommitRevealEnabled', 'set_weights');
  const tx = api.tx.subtensorModule!.setWeights!(options.netuid, weights.uids, weights.values, options.versionKey);
  return sender.send(tx, 'set_weights');
}
