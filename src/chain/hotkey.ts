/**
 * The validator's hotkey: a secret URI (mnemonic, hex seed or //Dev path), or a btcli hotkey
 * file (`~/.bittensor/wallets/NAME/hotkeys/HOTKEY`: JSON with `secretPhrase`, `secretSeed`,
 * `ss58Address`, ...; the key comes from the phrase, else the seed).
 *
 * Encrypted files start with `$NACL`, as btcli writes them: `$NACL`, a 24-byte nonce, then a
 * NaCl secretbox of the JSON, keyed by Argon2i (v1.3, 8 passes, 512 MiB, one lane, btcli's
 * fixed 16-byte salt) of the wallet password. The password comes from the environment
 * (`AQ_WALLET_PASSWORD`), never a flag (flags show in `ps`); without it such a file is refused
 * with a message that says so. Argon2i is `hash-wasm`'s (checked against libsodium's
 * crypto_pwhash), the secretbox tweetnacl's. Nothing here logs or returns the secret.
 */
import fs from 'node:fs';
import { argon2i } from 'hash-wasm';
import nacl from 'tweetnacl';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { signerFromSecret, type Signer } from '../wire/index.js';

/** Where a hotkey comes from. */
export type HotkeySource = ({ uri: string } | { file: string; password?: string }) & {
  /** Sign requests with an ed25519 session key the hotkey certifies (src/wire/auth.ts), not the hotkey itself. */
  sessionKeys?: boolean;
};

/** btcli's salt for the wallet-password KDF (bittensor keyfile `NACL_SALT`). */
export const NACL_SALT = Uint8Array.from([0x13, 0x71, 0x83, 0xdf, 0xf1, 0x5a, 0x09, 0xbc, 0x9c, 0x90, 0xb5, 0x51, 0x87, 0x39, 0xe9, 0xb1]);

/** The environment variable holding the wallet password for `$NACL` files. */
export const WALLET_PASSWORD_ENV = 'AQ_WALLET_PASSWORD';

/** Decrypts a `$NACL` keyfile's bytes with `password`; throws on a wrong password. */
export async function decryptNaclKeyfile(bytes: Uint8Array, password: string, what: string): Promise<string> {
  const body = bytes.subarray(5);
  if (body.length < nacl.secretbox.nonceLength + nacl.secretbox.overheadLength) {
    throw new Error(`${what}: expected a $NACL file of a nonce and a sealed box, got ${bytes.length} bytes`);
  }
  const key = await argon2i({ password, salt: NACL_SALT, parallelism: 1, iterations: 8, memorySize: 512 * 1024, hashLength: 32, outputType: 'binary' });
  const opened = nacl.secretbox.open(body.subarray(nacl.secretbox.nonceLength), body.subarray(0, nacl.secretbox.nonceLength), key);
  if (!opened) throw new Error(`${what}: the password in ${WALLET_PASSWORD_ENV} does not open this encrypted ($NACL) file`);
  return Buffer.from(opened).toString('utf8');
}

/**
 * The secret URI to derive the keypair from. A `$NACL` file opens with `source.password`, which
 * role configs take from the environment (WALLET_PASSWORD_ENV), never from a flag.
 */
export async function hotkeySecret(source: HotkeySource): Promise<string> {
  if ('uri' in source) {
    if (!source.uri) throw new Error('hotkey: expected a secret URI, got an empty string');
    return source.uri;
  }
  const what = `hotkey file ${source.file}`;
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(source.file);
  } catch (err) {
    throw new Error(`${what}: unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let text = bytes.toString('utf8');
  if (text.startsWith('$NACL')) {
    const password = source.password;
    if (!password) throw new Error(`${what}: encrypted ($NACL); set ${WALLET_PASSWORD_ENV} to the wallet password, or use an unencrypted hotkey file or AQ_HOTKEY_URI`);
    text = await decryptNaclKeyfile(bytes, password, what);
  }
  let json: { secretPhrase?: string; secretSeed?: string };
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    throw new Error(`${what}: expected btcli's JSON (secretPhrase, secretSeed, ...), got text that does not parse`);
  }
  const secret = json.secretPhrase || json.secretSeed;
  if (!secret) throw new Error(`${what}: expected a secretPhrase or secretSeed, found neither`);
  return secret;
}

/** A signer from a hotkey's secret URI or its btcli hotkey file (opened with the wallet password). */
export async function loadSigner(source: HotkeySource): Promise<Signer> {
  return signerFromSecret(await hotkeySecret(source));
}

/** The hotkey as a keyring pair, for extrinsics (weights). */
export async function loadKeyringPair(source: HotkeySource): Promise<KeyringPair> {
  await cryptoWaitReady();
  return new Keyring({ type: 'sr25519' }).addFromUri(await hotkeySecret(source));
}
