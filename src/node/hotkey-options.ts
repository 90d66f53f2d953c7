/**
 * The hotkey a node (trainer, dataset node) or a researcher's CLI signs its requests with: the
 * same flags as btcli (`--wallet.name`, `--wallet.hotkey`, `--wallet.path`), a hotkey file, or a
 * secret URI from the environment. With a hotkey, a node's id is its SS58 address: that is how
 * the coordinator binds requests to nodes and scores to uids on chain.
 */
import path from 'node:path';
import { ConfigError } from '../errors.js';
import type { OptionTable, OptionValues } from '../util/index.js';
import { type HotkeySource, DEFAULT_WALLET_PATH, walletHotkeyPath, loadSigner, WALLET_PASSWORD_ENV } from '../chain/index.js';
import { type Signer } from '../wire/index.js';

export const HOTKEY_OPTIONS = {
  'hotkey-uri': { type: 'string', default: '', env: 'AQ_HOTKEY_URI', description: 'secret URI (mnemonic or //Name) of this node\'s hotkey, which signs its requests (and a validator\'s weights); prefer the environment, it is never printed' },
  'hotkey-file': { type: 'string', default: '', env: 'AQ_HOTKEY_FILE', description: 'btcli hotkey file (~/.bittensor/wallets/NAME/hotkeys/HOTKEY), instead of --hotkey-uri; a $NACL file is opened with AQ_WALLET_PASSWORD' },
  'wallet.name': { type: 'string', default: '', env: 'AQ_WALLET_NAME', description: 'btcli wallet of the hotkey (as btcli\'s --wallet.name), instead of --hotkey-file' },
  'wallet.hotkey': { type: 'string', default: 'default', env: 'AQ_WALLET_HOTKEY', description: 'hotkey in that wallet' },
  'wallet.path': { type: 'string', default: DEFAULT_WALLET_PATH, env: 'AQ_WALLET_PATH', description: 'folder of btcli wallets' },
} as const satisfies OptionTable;

/** Signing with session keys (nodes and researchers' commands, not the coordinator). */
export const SESSION_KEY_OPTIONS = {
  'session-keys': { type: 'boolean', default: true, env: 'AQ_SESSION_KEYS', description: 'sign requests with an ed25519 session key the hotkey certifies once per session (checked in about a fifth of the CPU of an sr25519 signature); false: sign each request with the hotkey itself' },
} as const satisfies OptionTable;

/** The hotkey the flags name, or null for none (unsigned requests). */
export function hotkeySourceOf(o: OptionValues<typeof HOTKEY_OPTIONS> & Partial<OptionValues<typeof SESSION_KEY_OPTIONS>>, env: NodeJS.ProcessEnv): HotkeySource | null {
  const given = [o['hotkey-uri'] && '--hotkey-uri', o['hotkey-file'] && '--hotkey-file', o['wallet.name'] && '--wallet.name'].filter(Boolean);
  if (given.length > 1) throw new ConfigError('hotkey-uri', 'one of --hotkey-uri, --hotkey-file and --wallet.name', given.join(' and '));
  const sessionKeys = o['session-keys'] ?? true;
  if (o['hotkey-uri']) return { uri: o['hotkey-uri'], sessionKeys };
  const password = env[WALLET_PASSWORD_ENV];
  if (o['hotkey-file']) return { file: path.resolve(o['hotkey-file']), password, sessionKeys };
  if (o['wallet.name']) {
    try {
      return { file: walletHotkeyPath(o['wallet.path'], o['wallet.name'], o['wallet.hotkey']), password, sessionKeys };
    } catch (err) {
      throw new ConfigError('wallet.name', (err as Error).message, JSON.stringify(o['wallet.name']));
    }
  }
  return null;
}

/**
 * Opens the node's hotkey (if any) and settles its id: the hotkey's address, which an explicit
 * `--node-id` must then equal.
 */
export async function nodeIdentity(hotkey: HotkeySource | null, nodeIdFlag: string, fallback: string): Promise<{ nodeId: string; signer: Signer | null }> {
  if (!hotkey) return { nodeId: nodeIdFlag || fallback, signer: null };
  let signer: Signer;
  try {
    signer = await loadSigner(hotkey);
  } catch (err) {
    throw new ConfigError('hotkey-file' in hotkey ? 'hotkey-file' : 'hotkey-uri', 'a hotkey that opens', (err as Error).message);
  }
  signer.sessions = hotkey.sessionKeys === true;
  if (nodeIdFlag && nodeIdFlag !== signer.address) {
    throw new ConfigError('node-id', `the hotkey's address ${signer.address} or nothing (a signed node's id is its hotkey)`, JSON.stringify(nodeIdFlag));
  }
  return { nodeId: signer.address, signer };
}
