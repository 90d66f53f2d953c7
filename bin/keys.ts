/**
 * `actiquest keys new`: a new sr25519 hotkey in a btcli wallet folder, as btcli writes it.
 * `--encrypt` seals it as `$NACL` with the password in AQ_WALLET_PASSWORD (never a flag). Prints
 * the SS58 address and the file, never the secret: the mnemonic is in the file; back it up.
 */
import { parseOptions, type OptionTable } from '../src/util/index.js';
import { ConfigError } from '../src/errors.js';
import { DEFAULT_WALLET_PATH, newHotkeyFile, walletHotkeyPath, WALLET_PASSWORD_ENV } from '../src/chain/index.js';

const KEYS_OPTIONS = {
  'wallet.name': { type: 'string', default: '', description: 'wallet folder name (required)' },
  'wallet.hotkey': { type: 'string', default: 'default', description: 'hotkey file name' },
  'wallet.path': { type: 'string', default: DEFAULT_WALLET_PATH, env: 'AQ_WALLET_PATH', description: 'folder of btcli wallets' },
  encrypt: { type: 'boolean', default: false, description: `seal the file as btcli's $NACL with the password in ${WALLET_PASSWORD_ENV}` },
} as const satisfies OptionTable;

export async function runKeys(argv: string[], env: NodeJS.ProcessEnv = process.env, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'new') throw new ConfigError('keys', 'a subcommand: new', JSON.stringify(sub ?? ''));
  const o = parseOptions(KEYS_OPTIONS, rest, env, 'actiquest keys new [options]', 'Makes a btcli-compatible sr25519 hotkey file.');
  if (!o['wallet.name']) throw new ConfigError('wallet.name', 'a wallet name', 'nothing');
  const password = env[WALLET_PASSWORD_ENV];
  if (o.encrypt && !password) throw new ConfigError('encrypt', `a password in ${WALLET_PASSWORD_ENV}`, 'none set');
  let file: string;
  try {
    file = walletHotkeyPath(o['wallet.path'], o['wallet.name'], o['wallet.hotkey']);
  } catch (err) {
    throw new ConfigError('wallet.name', (err as Error).message, JSON.stringify(o['wallet.name']));
  }
  const made = await newHotkeyFile(file, o.encrypt ? password : undefined);
  out(`hotkey ${made.address}`);
  out(`written to ${made.file}${o.encrypt ? ' (encrypted, $NACL)' : ''}; its mnemonic is in that file: back it up, it is shown nowhere else`);
}
