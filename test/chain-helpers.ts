/**
 * The real subtensor runtime, offline: chopsticks builds blocks from the chain spec in
 * ../shared/chain with the runtime's own wasm (facts in ../shared/chain/README.md). Tests fail,
 * not skip, when CI=true and the spec is missing.
 */
import fs from 'node:fs';
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
    async close() {
      await api.disconnect();
      await ctx.close();
    },
  };
}
