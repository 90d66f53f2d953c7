/**
 * Timelocked commit-reveal of weights (CRv3 `commit_crv3_weights`, CRv4
 * `commit_timelocked_weights`): the weights are encrypted to a future drand round, committed,
 * and the chain decrypts and applies them itself in the reveal epoch with the round's beacon
 * signature (pallet drand's `Pulses`). Nothing is revealed by the validator, so a validator that
 * stops after committing loses nothing. The reveal round is computed as the Python SDK's
 * `get_encrypted_commit` does; the beacon (key, genesis, period) is read from the chain.
 */
import type { ApiPromise } from '@polkadot/api';
import type { Registry } from '@polkadot/types/types';
import { u8aToHex } from '@polkadot/util';
import { decodeAddress } from '@polkadot/util-crypto';
import { QUICKNET, timelockDecrypt, timelockEncrypt } from './timelock.js';
import { epochOf } from './subtensor.js';
import type { ExtrinsicSender } from './weights-publisher.js';
import type { U16Weights } from '../scoring/index.js';

/** Drand rounds of margin the SDK keeps before the reveal (pulses reach the chain late). */
export const PULSE_DELAY = 24;

/** The beacon the chain reveals with. */
export interface Beacon {
  publicKey: string;
  genesisTime: number;
  period: number;
}

/** The chain's drand beacon (pallet drand's BeaconConfig), quicknet when the pallet is absent. */
export async function readBeacon(api: ApiPromise): Promise<Beacon> {
  const q = api.query.drand;
  if (!q?.beaconConfig) return { ...QUICKNET };
  const c = (await q.beaconConfig()).toJSON() as { publicKey: string; genesisTime: number; period: number };
  return { publicKey: c.publicKey.replace(/^0x/, ''), genesisTime: Number(c.genesisTime), period: Number(c.period) };
}

/** The block at which the runtime reveals commits made in `commitBlock` (its epoch block). */
export function revealBlockOf(commitBlock: number, netuid: number, tempo: number, revealPeriodEpochs: number): number {
  const e = epochOf(commitBlock, netuid, tempo) + Math.max(1, revealPeriodEpochs) - 1;
  return (e + 1) * (tempo + 1) - netuid - 2;
}

/** The drand round to encrypt to, as the SDK computes it (bittensor-drand's generate_commit). */
export function revealRound(o: { block: number; netuid: number; tempo: number; revealPeriodEpochs: number; blockTimeSeconds: number; nowSeconds: number; beacon: Beacon }): number {
  const t1 = o.tempo + 1;
  const n1 = o.netuid + 1;
  let epoch = Math.floor((o.block + n1) / t1) + o.revealPeriodEpochs;
  const secondsUntil = () => Math.max(0, epoch * t1 - n1 - o.block) * o.blockTimeSeconds;
  while (secondsUntil() < PULSE_DELAY * o.beacon.period) epoch++;
  const revealTime = Math.floor(o.nowSeconds) + secondsUntil();
  return Math.max(1, Math.ceil((revealTime - o.beacon.genesisTime) / o.beacon.period) - PULSE_DELAY);
}

/** The SCALE payload of a CRv3 commit: `{ uids: Vec<u16>, values: Vec<u16>, version_key: u64 }`. */
export function crv3Payload(registry: Registry, w: U16Weights, versionKey: number): Uint8Array {
  return registry.createType('(Vec<u16>, Vec<u16>, u64)', [w.uids, w.values, versionKey]).toU8a();
}

/**
 * The SCALE payload of a CRv4 commit: `{ hotkey: Vec<u8>, uids: Vec<u16>, values: Vec<u16>,
 * version_key: u64 }`, the hotkey being the committer's AccountId32 (the runtime refuses a
 * payload naming another). Given as hex: a byte array would be read as already length-prefixed.
 */
export function crv4Payload(registry: Registry, hotkey: string, w: U16Weights, versionKey: number): Uint8Array {
  return registry.createType('(Vec<u8>, Vec<u16>, Vec<u16>, u64)', [u8aToHex(decodeAddress(hotkey)), w.uids, w.values, versionKey]).toU8a();
}

/** Which timelocked call the runtime has: CRv4 (and its mechanism variant) or CRv3, or none. */
export function timelockedCall(api: ApiPromise): 'crv4-mechanism' | 'crv4' | 'crv3' | null {
  const tx = api.tx.subtensorModule;
  if (tx?.commitTimelockedMechanismWeights) return 'crv4-mechanism';
  if (tx?.commitTimelockedWeights) return 'crv4';
  if (tx?.commitCrv3Weights) return 'crv3';
  return null;
}

/**
 * The arguments of the timelocked call, in the order of the runtime's dispatchables
 * (pallets/subtensor/src/macros/dispatches.rs): commit_crv3_weights(netuid, commit, reveal_round);
 * commit_timelocked_weights(netuid, commit, reveal_round, commit_reveal_version);
 * commit_timelocked_mechanism_weights(netuid, mecid, commit, reveal_round, commit_reveal_version).
 * The commit goes as hex: a byte array given for `Bytes` would be read as already length-prefixed.
 */
export function timelockedCallArgs(call: 'crv4-mechanism' | 'crv4' | 'crv3', netuid: number, ciphertext: Uint8Array, round: number, version: number): unknown[] {
  const commit = `0x${Buffer.from(ciphertext).toString('hex')}`;
  if (call === 'crv3') return [netuid, commit, round];
  if (call === 'crv4') return [netuid, commit, round, version];
  return [netuid, 0, commit, round, version];
}

/** A timelocked commit, kept until its reveal is seen (or seen to fail). */
export interface TimelockedCommit {
  version: 3 | 4;
  netuid: number;
  uid: number;
  uids: number[];
  values: number[];
  round: number;
  commitBlock: number;
  revealBlock: number;
  ciphertext: Buffer;
}

/** Encrypts `w` to its reveal round and commits it; resolves with the including block. */
export async function commitTimelocked(api: ApiPromise, sender: ExtrinsicSender, o: {
  netuid: number; uid: number; w: U16Weights; versionKey: number; block: number; tempo: number; revealPeriodEpochs: number; blockTimeSeconds: number;
}): Promise<TimelockedCommit> {
  const call = timelockedCall(api);
  if (!call) throw new Error('this runtime has no timelocked commit call (commit_crv3_weights or commit_timelocked_weights)');
  const beacon = await readBeacon(api);
  const round = revealRound({ ...o, nowSeconds: Date.now() / 1000, beacon });
  const version = call === 'crv3' ? 3 : 4;
  const payload = version === 3 ? crv3Payload(api.registry, o.w, o.versionKey) : crv4Payload(api.registry, sender.signer.address, o.w, o.versionKey);
  const ciphertext = timelockEncrypt(payload, round, beacon.publicKey);
  const tx = api.tx.subtensorModule!;
  const crVersion = call === 'crv3' ? 0 : Number((await api.query.subtensorModule!.commitRevealWeightsVersion!()).toString());
  const args = timelockedCallArgs(call, o.netuid, ciphertext, round, crVersion);
  const extrinsic = call === 'crv3' ? tx.commitCrv3Weights!(...args) : call === 'crv4' ? tx.commitTimelockedWeights!(...args) : tx.commitTimelockedMechanismWeights!(...args);
  const action = call === 'crv3' ? 'commit_crv3_weights' : call === 'crv4' ? 'commit_timelocked_weights' : 'commit_timelocked_mechanism_weights';
  const { blockHash } = await sender.send(extrinsic, action);
  const commitBlock = (await api.rpc.chain.getHeader(blockHash)).number.toNumber();
  return { version, netuid: o.netuid, uid: o.uid, uids: o.w.uids, values: o.w.values, round, commitBlock, revealBlock: revealBlockOf(commitBlock, o.netuid, o.tempo, o.revealPeriodEpochs), ciphertext };
}

/**
 * What became of a commit once the chain is past its reveal block: revealed (the Weights row
 * holds its values), or not, with the reason read from the chain (no pulse for its round, a
 * pulse whose signature does not open it, or weights the runtime refused).
 */
export async function revealOutcome(api: ApiPromise, c: TimelockedCommit): Promise<{ revealed: true } | { revealed: false; reason: string }> {
  const row = (await api.query.subtensorModule!.weights!(c.netuid, c.uid)).toJSON() as [number, number][];
  if (JSON.stringify(row) === JSON.stringify(c.uids.map((u, i) => [u, c.values[i]]))) return { revealed: true };
  const pulse = api.query.drand?.pulses ? ((await api.query.drand.pulses(c.round)).toJSON() as { signature: string } | null) : null;
  if (!pulse?.signature) return { revealed: false, reason: `the chain has no drand pulse for round ${c.round}, so it dropped the commit` };
  try {
    timelockDecrypt(c.ciphertext, pulse.signature);
  } catch {
    return { revealed: false, reason: `the chain's pulse for round ${c.round} has a signature that does not open the commit (not the beacon's signature of that round)` };
  }
  return { revealed: false, reason: 'the chain opened the commit but did not apply the weights (a weight rule refused them)' };
}
