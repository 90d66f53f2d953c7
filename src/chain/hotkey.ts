/**
 * The validator's hotkey: a secret URI (mnemonic, hex seed or //Dev path), or a btcli hotkey
 * file (`~/.bittensor/wallets/NAME/hotkeys/HOTKEY`: JSON with `secretPhrase`, `secretSeed`,
 * `ss58Address`, ...; the key comes from the phrase, else the seed). Encrypted files (`$NACL`)
 * are refused with a message: reading them needs the wallet password and is not done yet.
 * Nothing here logs or returns the secret.
 */
import fs from 'node:fs';

/** Where a hotkey comes from. */
export type HotkeySource = { uri: string } | { file: string };

/** The secret URI to derive the keypair from. */
export function hotkeySecret(source: HotkeySource): string {
  if ('uri' in source) {
    if (!source.uri) throw new Error('hotkey: expected a secret URI, got an empty string');
    return source.uri;
  }
  let text: string;
  try {
    text = fs.readFileSync(source.file, 'utf8');
  } catch (err) {
    throw new Error(`hotkey file ${source.file}: unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (text.startsWith('$NACL')) {
    throw new Error(`hotkey file ${source.file}: encrypted ($NACL) files are not supported yet; use an unencrypted hotkey file or set AQ_HOTKEY_URI`);
  }
  let json: { secretPhrase?: string; secretSeed?: string };
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    throw new Error(`hotkey file ${source.file}: expected btcli's JSON (secretPhrase, secretSeed, ...), got text that does not parse`);
  }
  const secret = json.secretPhrase || json.secretSeed;
  if (!secret) throw new Error(`hotkey file ${source.file}: expected a secretPhrase or secretSeed, found neither`);
  return secret;
}
