/**
 * Shard leases: the coordinator signs, for each trainer of a round and each dataset node its
 * shards come from, which shards that trainer may read there and until when; the dataset node
 * serves a shard only against such a lease. See `ShardLease` in types.proto.
 */
import { decodeAddress } from '@polkadot/util-crypto';
import { InvalidFieldError, LeaseRefusedError, LeaseSignatureError } from '../errors.js';
import { sr25519Ready, verifySr25519, type Signer } from './auth.js';
import type { ShardLease } from './proto.js';

/** The bytes a lease's signature covers. */
export function leasePayload(l: Omit<ShardLease, 'signature'>): Buffer {
  return Buffer.from(['actiquest/v1 lease', l.datasetNodeId, l.trainer, l.shardIds.join(','), String(l.expiresUnixMs), l.coordinator].join('\n'));
}

/** Signs a lease with the coordinator's key. */
export function signLease(signer: Signer, l: Omit<ShardLease, 'signature' | 'coordinator'>): ShardLease {
  const unsigned = { ...l, coordinator: signer.address };
  return { ...unsigned, signature: Buffer.from(signer.sign(leasePayload(unsigned))) };
}

/** What a dataset node checks a lease against. */
export interface LeaseCheck {
  /** This dataset node's id. */
  datasetNodeId: string;
  /** The lease keys (SS58) of the coordinators this node registered with; empty while none is known. */
  coordinatorKeys: ReadonlySet<string>;
  shardId: string;
  /** The signed requester's address ('' on an open server: the lease is a bearer token). */
  caller: string;
  now?: number;
}

/** Throws unless `lease` lets this request read `shardId` here, now. */
export function checkLease(lease: ShardLease | null | undefined, c: LeaseCheck): void {
  if (!lease) throw new LeaseRefusedError('lease', 'a shard lease signed by the coordinator (it comes with the task)', 'none');
  if (c.coordinatorKeys.size === 0) throw new LeaseRefusedError('lease', 'a coordinator this node has registered with (it names the lease key)', 'none yet');
  if (!c.coordinatorKeys.has(lease.coordinator)) {
    const keys = [...c.coordinatorKeys];
    throw new LeaseSignatureError(keys.length === 1 ? `a lease signed by the coordinator's key ${keys[0]}` : `a lease signed by one of the coordinators' keys ${keys.join(', ')}`, `one from ${JSON.stringify(lease.coordinator.slice(0, 64))}`);
  }
  let ok = false;
  try {
    ok = verifySr25519(leasePayload(lease), lease.signature, decodeAddress(lease.coordinator));
  } catch {
    ok = false;
  }
  if (!ok) throw new LeaseSignatureError(`the coordinator's signature over the lease's fields`, 'one that does not verify (a forged or altered lease)');
  if (lease.datasetNodeId !== c.datasetNodeId) throw new LeaseRefusedError('lease.dataset_node_id', `this node, ${c.datasetNodeId}`, `${JSON.stringify(lease.datasetNodeId)} (a lease for another node)`);
  const now = c.now ?? Date.now();
  if (!(lease.expiresUnixMs > now)) throw new LeaseRefusedError('lease.expires_unix_ms', 'a time still to come', `${((now - lease.expiresUnixMs) / 1000).toFixed(1)} s ago (an expired lease)`);
  if (!lease.shardIds.includes(c.shardId)) throw new LeaseRefusedError('lease.shard_ids', `a list holding ${c.shardId}`, JSON.stringify(lease.shardIds.slice(0, 8)));
  if (c.caller && lease.trainer !== c.caller) throw new LeaseRefusedError('lease.trainer', `the signing hotkey ${c.caller}`, `${JSON.stringify(lease.trainer)} (another trainer's lease)`);
}

/** Waits for the sr25519 wasm (once per process) before leases are signed or checked. */
export async function leaseCryptoReady(): Promise<void> {
  await sr25519Ready();
}

/** Checks a lease key handed over at registration. */
export function checkLeaseKey(key: string): string {
  try {
    if (decodeAddress(key).length !== 32) throw new Error();
  } catch {
    throw new InvalidFieldError('lease_key', 'an SS58 address', JSON.stringify(key.slice(0, 64)));
  }
  return key;
}
