/**
 * btcli-compatible hotkey files: where a wallet's hotkey lives
 * (`<path>/<name>/hotkeys/<hotkey>`, path `~/.bittensor/wallets` by default) and making a new
 * one (`actiquest keys new`): an sr25519 key from a fresh 12-word mnemonic, written as btcli's
 * JSON (`accountId`, `publicKey`, `privateKey`, `secretPhrase`, `secretSeed`, `ss58Address`),
 * mode 0600, never over an existing file; encrypted as btcli's `$NACL` when a password is given
 * (hotkey.ts opens both).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { argon2i } from 'hash-wasm';
import nacl from 'tweetnacl';
import { cryptoWaitReady, encodeAddress, mnemonicGenerate, mnemonicToMiniSecret, sr25519PairFromSeed } from '@polkadot/util-crypto';
import { u8aToHex } from '@polkadot/util';
import { ID_RULE, isId } from '../util/index.js';
import { NACL_SALT } from './hotkey.js';

/** The default wallets folder, as btcli's `--wallet.path`. */
export const DEFAULT_WALLET_PATH = path.join(os.homedir(), '.bittensor', 'wallets');

/** The hotkey file of wallet `name`, hotkey `hotkey` under `walletPath`. */
export function walletHotkeyPath(walletPath: string, name: string, hotkey: string): string {
  for (const [what, v] of [['wallet.name', name], ['wallet.hotkey', hotkey]] as const) {
    if (!isId(v) || v === '.' || v === '..') throw new Error(`${what}: expected ${ID_RULE}, got ${JSON.stringify(v)}`);
  }
  return path.join(walletPath.replace(/^~(?=$|\/)/, os.homedir()), name, 'hotkeys', hotkey);
}

/** Seals `json` as btcli's `$NACL` keyfile under `password`. */
export async function encryptNaclKeyfile(json: string, password: string): Promise<Buffer> {
  const key = await argon2i({ password, salt: NACL_SALT, parallelism: 1, iterations: 8, memorySize: 512 * 1024, hashLength: 32, outputType: 'binary' });
  const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
  return Buffer.concat([Buffer.from('$NACL'), nonce, nacl.secretbox(Buffer.from(json), nonce, key)]);
}

/** Makes a new hotkey file; returns its SS58 address (network prefix 42) and path. */
export async function newHotkeyFile(file: string, password?: string): Promise<{ address: string; file: string }> {
  if (fs.existsSync(file)) throw new Error(`hotkey file ${file}: exists already; choose another --wallet.hotkey or move it away`);
  await cryptoWaitReady();
  const phrase = mnemonicGenerate(12);
  const seed = mnemonicToMiniSecret(phrase);
  const pair = sr25519PairFromSeed(seed);
  const address = encodeAddress(pair.publicKey, 42);
  const json = JSON.stringify({
    accountId: u8aToHex(pair.publicKey), publicKey: u8aToHex(pair.publicKey), privateKey: u8aToHex(pair.secretKey),
    secretPhrase: phrase, secretSeed: u8aToHex(seed), ss58Address: address,
  });
  const bytes = password ? await encryptNaclKeyfile(json, password) : Buffer.from(json);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, bytes, { mode: 0o600, flag: 'wx' });
  return { address, file };
}
