/**
 * Setting the coordinator's weights on a subtensor chain after each round: read the metagraph,
 * map scored nodes to uids by hotkey (a node's id must be its hotkey's SS58 address), turn
 * scores into u16 weights under the subnet's rules, and set them when the rate limit allows.
 * Refusals are logged with the operator's explanation; they never stop training.
 */
import type { ApiPromise } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { connectSubtensor, readMetagraph } from './subtensor.js';
import { ExtrinsicSender, publishWeights } from './weights-publisher.js';
import { commitWeights, PendingCommitStore, revealPending } from './commit-reveal.js';
import { hotkeySecret, type HotkeySource } from './hotkey.js';
import type { Scoreboard } from '../scoring/index.js';
import type { Logger } from '../util/index.js';

/** What a publication did. */
export interface Publication {
  block: number;
  uids: number[];
  values: number[];
  /** Scored nodes without a uid on the subnet. */
  unmapped: string[];
  /** set: set_weights; commit: commit_weights (revealed in a later round). */
  mode: 'set' | 'commit';
  /** Earlier commits revealed during this publication. */
  revealed: number;
}

/** Options of {@link startChainPublisher}. */
export interface ChainPublisherOptions {
  url: string;
  netuid: number;
  /** The validator hotkey: a secret URI or a btcli hotkey file. Never logged. */
  hotkey: HotkeySource;
  log: Logger;
  /** Where commits wait for their reveal (kept across restarts). */
  pendingCommitsFile: string;
  /** Sees the subnet's registered hotkeys whenever the metagraph is read (admission). */
  onMetagraph?: (hotkeys: string[], block: number) => void;
  /** How often the metagraph is read besides each publication (ms; default 30 s). */
  metagraphRefreshMs?: number;
}

/** A connected publisher. */
export interface ChainPublisher {
  hotkey: string;
  publish(scoreboard: Scoreboard): Promise<Publication | null>;
  close(): Promise<void>;
}

/** Connects to the chain and checks the hotkey is registered on the subnet. */
export async function startChainPublisher(options: ChainPublisherOptions): Promise<ChainPublisher> {
  await cryptoWaitReady();
  const pair = new Keyring({ type: 'sr25519' }).addFromUri(await hotkeySecret(options.hotkey));
  const api: ApiPromise = await connectSubtensor(options.url);
  const sender = new ExtrinsicSender(api, pair);
  const first = await readMetagraph(api, options.netuid);
  options.onMetagraph?.(first.neurons.map((n) => n.hotkey), first.block);
  const me = first.neurons.find((n) => n.hotkey === pair.address);
  if (!me) {
    await api.disconnect();
    throw new Error(`hotkey ${pair.address} is not registered on subnet ${options.netuid}`);
  }
  options.log.info('chain connected', { url: options.url, netuid: options.netuid, hotkey: pair.address, uid: me.uid, permit: me.validatorPermit });
  let lastSet = -Infinity;
  const store = new PendingCommitStore(options.pendingCommitsFile);
  // Admission needs newly registered hotkeys without waiting for a round.
  const refresh = options.onMetagraph ? setInterval(() => {
    readMetagraph(api, options.netuid).then((mg) => options.onMetagraph!(mg.neurons.map((n) => n.hotkey), mg.block))
      .catch((err: Error) => options.log.warn('metagraph not read', { error: err.message }));
  }, options.metagraphRefreshMs ?? 30_000) : null;
  refresh?.unref();
  return {
    hotkey: pair.address,
    async publish(scoreboard) {
      // Reveal earlier commits whose epoch has come (also those of a previous run).
      let revealed = 0;
      if (store.list().length > 0) {
        for (const o of await revealPending(api, sender, store)) {
          if (o.result === 'revealed') revealed++;
          if (o.result === 'dropped') options.log.warn('commit dropped', { reason: o.reason });
        }
      }
      const mg = await readMetagraph(api, options.netuid);
      options.onMetagraph?.(mg.neurons.map((n) => n.hotkey), mg.block);
      if (mg.block - lastSet < mg.hyperparams.weightsSetRateLimit) {
        options.log.info('weights not set: rate limit', { block: mg.block, lastSet, limit: mg.hyperparams.weightsSetRateLimit });
        return null;
      }
      const uids = new Map(mg.neurons.map((n) => [n.hotkey, n.uid]));
      const unmapped = scoreboard.all().map((s) => s.nodeId).filter((id) => !uids.has(id));
      const w = scoreboard.weights(uids, { maxWeightsLimit: mg.hyperparams.maxWeightsLimit, minAllowedWeights: mg.hyperparams.minAllowedWeights });
      if (w.uids.length === 0) return null;
      const mode = mg.hyperparams.commitRevealEnabled ? 'commit' : 'set';
      try {
        if (mode === 'commit') await commitWeights(api, sender, store, options.netuid, w, mg.hyperparams.weightsVersionKey);
        else await publishWeights(api, sender, mg, w, { netuid: options.netuid, versionKey: mg.hyperparams.weightsVersionKey });
      } catch (err) {
        options.log.warn('weights not set', { error: (err as Error).message });
        return null;
      }
      lastSet = mg.block;
      options.log.info(mode === 'commit' ? 'weights committed' : 'weights set', { block: mg.block, uids: w.uids.length, unmapped: unmapped.length, revealed });
      return { block: mg.block, uids: w.uids, values: w.values, unmapped, mode, revealed };
    },
    async close() {
      if (refresh) clearInterval(refresh);
      await api.disconnect();
    },
  };
}
