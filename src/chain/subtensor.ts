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

/** Connects to a subtensor node (ws:// or wss://), failing after `timeoutMs`. */
export async function connectSubtensor(url: string, options: { timeoutMs?: number } = {}): Promise<ApiPromise> {
  const provider = new WsProvider(url, false);
  const timeout = options.timeoutMs ?? 30_000;
  await Promise.race([
    provider.connect(),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`subtensor at ${url}: no connection within ${timeout} ms`)), timeout)),
  ]);
  return ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true });
}

/** Reads the subnet's neurons and weight rules. */
export async function readMetagraph(api: ApiPromise, netuid: number): Promise<Metagraph> {
  const q = api.query.subtensorModule!;
  const exists = (await q.networksAdded!(netuid)).toJSON();
  if (!exists) throw new Error(`subnet ${netuid}: not found on this chain`);
  const [n, permits, tempo, rate, minW, maxW, version, cr, reveal, header] = await Promise.all([
    q.subnetworkN!(netuid), q.validatorPermit!(netuid), q.tempo!(netuid), q.weightsSetRateLimit!(netuid),
    q.minAllowedWeights!(netuid), q.maxWeightsLimit!(netuid), q.weightsVersionKey!(netuid),
    q.commitRevealWeightsEnabled!(netuid), q.revealPeriodEpochs!(netuid), api.rpc.chain.getHeader(),
  ]);
  const count = Number(n.toString());
  const permitList = permits.toJSON() as boolean[];
  const hotkeys = await Promise.all(Array.from({ length: count }, (_, uid) => q.keys!(netuid, uid)));
  return {
    netuid,
    block: header.number.toNumber(),
    neurons: hotkeys.map((k, uid) => ({ uid, hotkey: k.toString(), validatorPermit: permitList[uid] === true })),
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
