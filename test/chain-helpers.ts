/**
 * The real subtensor runtime, offline: chopsticks builds blocks from the chain spec in
 * ../shared/chain with the runtime's own wasm (facts in ../shared/chain/README.md). Tests fail,
 * not skip, when CI=true and the spec is missing.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupWithServer } from '@acala-network/chopsticks';
import { getAuraSlotDuration } from '@acala-network/chopsticks-core';
import { ApiPromise, Keyring, WsProvider } from '@polkadot/api';
import type { KeyringPair } from '@polkadot/keyring/types';
import { ExtrinsicSender } from '../src/chain/index.js';

export const SPEC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/chain/subtensor-spec293-raw.json');

/** Whether chain tests can run here; under CI a missing spec is an error. */
export function chainAvailable(): boolean {
  if (fs.existsSync(SPEC)) return true;
  if (process.env.CI === 'true') throw new Error(`CI=true but the subtensor chain spec is missing: ${SPEC}`);
  return false;
}

export interface LocalChain {
  api: ApiPromise;
  url: string;
  keyring: Keyring;
  alice: KeyringPair;
  sudo(call: Parameters<ApiPromise['tx']['sudo']['sudo']>[0], action: string): Promise<void>;
  sender(pair: KeyringPair): ExtrinsicSender;
  blocks(n: number): Promise<void>;
  /** Builds a block every `ms` (a chain whose time passes by itself) until the returned stop is called. */
  produceBlocks(ms: number): () => Promise<void>;
  /** chopsticks' dev_setStorage (falsy values delete: set those by sudo calls). */
  setStorage(storage: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

/** Starts chopsticks in-process with Aura slots of 1 s and an aligned genesis timestamp. */
export async function startLocalChain(): Promise<LocalChain> {
  const spec = JSON.parse(fs.readFileSync(SPEC, 'utf8')) as { genesis: { raw: { top: Record<string, string> } } };
  const top = spec.genesis.raw.top;
  // chopsticks' slot probe falls back to 12 s for this runtime; its slots are 1 s.
  (getAuraSlotDuration as unknown as { cache: Map<string, Promise<number>> }).cache.set(top['0x3a636f6465']!, Promise.resolve(1000));
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64LE(BigInt(Math.floor(Date.now() / 1000) * 1000));
  top['0xf0c365c3cf59d671eb72da0e7a4113c49f1f0515f462cdcf84e0f1d6045dfcbb'] = `0x${ts.toString('hex')}`;
  spec.genesis.raw.top = Object.fromEntries(Object.entries(top).sort(([a], [b]) => (a < b ? -1 : 1)));
  const ctx = await setupWithServer({ genesis: spec, port: 0, host: '127.0.0.1', 'build-block-mode': 'Instant', 'allow-unresolved-imports': true } as never);
  const url = `ws://${ctx.addr}`;
  const api = await ApiPromise.create({ provider: new WsProvider(url), noInitWarn: true });
  const keyring = new Keyring({ type: 'sr25519' });
  const alice = keyring.addFromUri('//Alice');
  const senders = new Map<string, ExtrinsicSender>();
  const sender = (pair: KeyringPair) => {
    let s = senders.get(pair.address);
    if (!s) senders.set(pair.address, (s = new ExtrinsicSender(api, pair)));
    return s;
  };
  return {
    api, url, keyring, alice, sender,
    async sudo(call, action) {
      await sender(alice).send(api.tx.sudo.sudo(call), action);
    },
    async blocks(n) {
      for (let i = 0; i < n; i++) await ctx.chain.newBlock();
    },
    produceBlocks(ms) {
      let stopped = false;
      const loop = (async () => {
        while (!stopped) {
          await ctx.chain.newBlock().catch(() => undefined);
          await new Promise((r) => setTimeout(r, ms));
        }
      })();
      return async () => {
        stopped = true;
        await loop;
      };
    },
    async setStorage(storage) {
      await (api as unknown as { _rpcCore: { provider: { send: (m: string, p: unknown[]) => Promise<unknown> } } })._rpcCore.provider.send('dev_setStorage', [storage]);
    },
    async close() {
      await api.disconnect();
      await ctx.close();
    },
  };
}

/**
 * A TCP relay in front of the chain's port: `cut()` drops every connection and refuses new ones
 * (the chain unreachable, as in an outage), `restore()` listens again on the same port.
 */
export async function chainRelay(target: string): Promise<{ url: string; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const [host, port] = new URL(target).host.split(':') as [string, string];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const listen = (p: number) => new Promise<number>((resolve) => server.listen(p, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  const relayPort = await listen(0);
  const closeServer = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  return {
    url: `ws://127.0.0.1:${relayPort}`,
    async cut() {
      const closing = closeServer();
      for (const s of sockets) s.destroy();
      await closing;
    },
    async restore() {
      await listen(relayPort);
    },
    async close() {
      const closing = closeServer();
      for (const s of sockets) s.destroy();
      await closing;
    },
  };
}
