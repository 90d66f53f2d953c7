/**
 * Reading a Bittensor subnet from a subtensor node (`@polkadot/api`): its neurons (uid, hotkey,
 * validator permit) and the hyper-parameters that govern weights (tempo, rate limit, min allowed
 * weights, max weight limit, version key, commit-reveal). Storage names are those of pallet
 * subtensor (see shared/chain/README.md).
 */
import { ApiPromise, WsProvider } from '@polkadot/api';

/** One neuron of the subnet. */
export interface Neuron {
  uid: number;
  hotkey: string;
  validatorPermit: boolean;
  /** The block of the neuron's last weight setting (or registration). */
  lastUpdate: number;
}

/** The subnet's rules for setting weights. */
export interface WeightHyperparams {
  tempo: number;
  weightsSetRateLimit: number;
  minAllowedWeights: number;
  /** u16; 65535 means no limit. */
  maxWeightsLimit: number;
  weightsVersionKey: number;
  commitRevealEnabled: boolean;
  revealPeriodEpochs: number;
}

/** A subnet's metagraph, as far as weights need it. */
export interface Metagraph {
  netuid: number;
  block: number;
  neurons: Neuron[];
  hyperparams: WeightHyperparams;
}

/** The message of whatever a WebSocket or @polkadot/api threw (an Error, an ErrorEvent, a string). */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  const e = err as { message?: unknown; type?: unknown; error?: unknown } | null;
  if (e && typeof e.message === 'string' && e.message) return e.message;
  if (e?.error instanceof Error) return e.error.message;
  if (e && typeof e.type === 'string') return `WebSocket ${e.type}`;
  return String(err);
}

/**
 * Connects to a subtensor node (ws:// or wss://), failing after `timeoutMs` with the URL and
 * the reason. The connection does not reconnect by itself: callers that live long reconnect
 * with backoff (see weights-loop.ts).
 */
export async function connectSubtensor(url: string, options: { timeoutMs?: number } = {}): Promise<ApiPromise> {
  const provider = new WsProvider(url, false);
  const timeout = options.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  let refused: (err: Error) => void = () => undefined;
  // A refused or failed socket rejects at once, with its reason; silence, after `timeoutMs`.
  const unsubscribe = provider.on('error', (err: unknown) => refused(new Error(reasonOf(err))));
  try {
    await Promise.race([
      provider.connect().then(() => provider.isReady),
      new Promise((_, reject) => {
        refused = reject;
        timer = setTimeout(() => reject(new Error(`no connection within ${timeout} ms`)), timeout);
      }),
    ]);
    return await ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true });
  } catch (err) {
    await provider.disconnect().catch(() => undefined);
    throw new Error(`subtensor at ${url}: ${reasonOf(err)}`);
  } finally {
    clearTimeout(timer);
    unsubscribe();
  }
}

/** Reads the subnet's neurons and weight rules. */
export async function readMetagraph(api: ApiPromise, netuid: number): Promise<Metagraph> {
  const q = api.query.subtensorModule!;
  const exists = (await q.networksAdded!(netuid)).toJSON();
  if (!exists) throw new Error(`subnet ${netuid}: not found on this chain`);
  const [n, permits, lastUpdate, tempo, rate, minW, maxW, version, cr, reveal, header] = await Promise.all([
    q.subnetworkN!(netuid), q.validatorPermit!(netuid), q.lastUpdate!(netuid), q.tempo!(netuid), q.weightsSetRateLimit!(netuid),
    q.minAllowedWeights!(netuid), q.maxWeightsLimit!(netuid), q.weightsVersionKey!(netuid),
    q.commitRevealWeightsEnabled!(netuid), q.revealPeriodEpochs!(netuid), api.rpc.chain.getHeader(),
  ]);
  const count = Number(n.toString());
  const permitList = permits.toJSON() as boolean[];
  const updates = (lastUpdate.toJSON() as number[] | null) ?? [];
  const hotkeys = await Promise.all(Array.from({ length: count }, (_, uid) => q.keys!(netuid, uid)));
  return {
    netuid,
    block: header.number.toNumber(),
    neurons: hotkeys.map((k, uid) => ({ uid, hotkey: k.toString(), validatorPermit: permitList[uid] === true, lastUpdate: Number(updates[uid] ?? 0) })),
    hyperparams: {
      tempo: Number(tempo.toString()),
      weightsSetRateLimit: Number(rate.toString()),
      minAllowedWeights: Number(minW.toString()),
      maxWeightsLimit: Number(maxW.toString()),
      weightsVersionKey: Number(version.toString()),
      commitRevealEnabled: cr.toJSON() === true,
      revealPeriodEpochs: Number(reveal.toString()),
    },
  };
}

/** The epoch index of `block` on subnet `netuid` (pallet subtensor's get_epoch_index). */
export function epochOf(block: number, netuid: number, tempo: number): number {
  return Math.floor((block + netuid + 1) / (tempo + 1));
}
