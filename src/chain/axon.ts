/**
 * Validators' endpoints on chain. A coordinator announces its public gRPC endpoint with
 * `serve_axon` under its validator hotkey; trainers and dataset nodes read every neuron's axon
 * (`neuronInfoRuntimeApi.getNeuronsLite`) and keep the validators: a permit and a usable
 * endpoint. The chain stores an IP as a u128 with its type (4 or 6) and refuses 127.0.0.1 and ::1
 * (other loopback addresses, 127.0.0.2 say, are accepted, which is how tests announce).
 */
import { isIP } from 'node:net';
import type { ApiPromise } from '@polkadot/api';
import type { ExtrinsicSender } from './weights-publisher.js';

/** serve_axon's protocol field: Actiquest speaks gRPC over TCP (bittensor's axons use 4). */
export const AXON_PROTOCOL = 4;
/** The axon version Actiquest announces (the chain stores it; clients may read it). */
export const AXON_VERSION = 1;

/** An endpoint as the chain holds it. */
export interface AxonInfo {
  ip: bigint;
  ipType: number;
  port: number;
}

/** An IP address as the chain's u128 and type; throws for anything that is not an IP. */
export function encodeIp(host: string): { ip: bigint; ipType: 4 | 6 } {
  const kind = isIP(host);
  if (kind === 4) return { ip: host.split('.').reduce((n, o) => (n << 8n) | BigInt(Number(o)), 0n), ipType: 4 };
  if (kind === 6) {
    const [head, tail] = host.split('::') as [string, string | undefined];
    const part = (s: string | undefined) => (s ? s.split(':') : []);
    const groups = tail === undefined ? part(head) : [...part(head), ...Array(8 - part(head).length - part(tail).length).fill('0'), ...part(tail)];
    return { ip: groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g || '0', 16)), 0n), ipType: 6 };
  }
  throw new Error(`${JSON.stringify(host)}: expected an IPv4 or IPv6 address (the chain stores addresses, not names)`);
}

/**
 * The host:port of an axon, or the reason it is unusable (never announced, a zero or loopback
 * address the chain should not hold, an unknown IP type, port 0).
 */
export function axonAddress(a: AxonInfo): { address: string } | { unusable: string } {
  if (a.ip === 0n && a.port === 0) return { unusable: 'no endpoint announced' };
  if (!(a.port > 0 && a.port < 65536)) return { unusable: `port ${a.port}` };
  if (a.ipType === 4) {
    if (a.ip <= 0n || a.ip >= 0xffffffffn) return { unusable: `IPv4 value ${a.ip}` };
    const host = [24n, 16n, 8n, 0n].map((s) => Number((a.ip >> s) & 255n)).join('.');
    return { address: `${host}:${a.port}` };
  }
  if (a.ipType === 6) {
    if (a.ip <= 1n || a.ip >= (1n << 128n) - 1n) return { unusable: `IPv6 value ${a.ip}` };
    const groups = Array.from({ length: 8 }, (_, i) => ((a.ip >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
    return { address: `[${groups.join(':')}]:${a.port}` };
  }
  return { unusable: `IP type ${a.ipType}` };
}

/** Announces `host:port` for the sender's hotkey on subnet `netuid`. */
export async function announceAxon(api: ApiPromise, sender: ExtrinsicSender, netuid: number, host: string, port: number): Promise<void> {
  const { ip, ipType } = encodeIp(host);
  await sender.send(api.tx.subtensorModule!.serveAxon!(netuid, AXON_VERSION, ip, port, ipType, AXON_PROTOCOL, 0, 0), 'serve_axon');
}

/** A neuron as discovery sees it. */
export interface NeuronEndpoint {
  uid: number;
  hotkey: string;
  validatorPermit: boolean;
  /** Stake backing the hotkey (the chain's units). */
  stake: bigint;
  axon: AxonInfo;
}

/** Every neuron's hotkey, permit, stake and axon, in one runtime call. */
export async function readNeuronEndpoints(api: ApiPromise, netuid: number): Promise<NeuronEndpoint[]> {
  const exists = (await api.query.subtensorModule!.networksAdded!(netuid)).toJSON();
  if (!exists) throw new Error(`subnet ${netuid}: not found on this chain`);
  const neurons = (await api.call.neuronInfoRuntimeApi!.getNeuronsLite!(netuid)).toJSON() as {
    uid: number; hotkey: string; validatorPermit: boolean; stake: [string, number | string][];
    axonInfo: { ip: number | string; port: number; ipType: number };
  }[];
  return neurons.map((n) => ({
    uid: Number(n.uid), hotkey: String(n.hotkey), validatorPermit: n.validatorPermit === true,
    stake: (n.stake ?? []).reduce((s, [, amount]) => s + BigInt(amount), 0n),
    axon: { ip: BigInt(n.axonInfo?.ip ?? 0), ipType: Number(n.axonInfo?.ipType ?? 0), port: Number(n.axonInfo?.port ?? 0) },
  }));
}
