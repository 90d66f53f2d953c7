import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { hotkeySecret } from './hotkey.js';
import { walletHotkeyPath } from './keyfile.js';
import { runKeys } from '../../bin/keys.js';

describe('actiquest keys new', () => {
  it('writes a btcli hotkey file (0600, never over an existing one) that reads back to the address it printed, plain and $NACL', async () => {
    await cryptoWaitReady();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-keys-'));
    try {
      const lines: string[] = [];
      await runKeys(['new', '--wallet.name', 'miner', '--wallet.path', dir], {}, (l) => lines.push(l));
      const file = walletHotkeyPath(dir, 'miner', 'default');
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      expect(Object.keys(json).sort()).toEqual(['accountId', 'privateKey', 'publicKey', 'secretPhrase', 'secretSeed', 'ss58Address']);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      const address = new Keyring({ type: 'sr25519' }).addFromUri(await hotkeySecret({ file })).address;
      expect(json.ss58Address).toBe(address);
      expect(new Keyring({ type: 'sr25519' }).addFromUri(json.secretSeed).address).toBe(address);
      expect(lines[0]).toBe(`hotkey ${address}`);
      // Nothing printed holds the secret.
      expect(lines.join('\n')).not.toContain(json.secretPhrase.split(' ')[0] + ' ' + json.secretPhrase.split(' ')[1]);
      await expect(runKeys(['new', '--wallet.name', 'miner', '--wallet.path', dir], {}, () => {})).rejects.toThrow('exists already');
      await expect(runKeys(['new', '--wallet.name', '../x', '--wallet.path', dir], {}, () => {})).rejects.toThrow('--wallet.name: expected');
      await expect(runKeys(['new', '--wallet.name', 'v', '--encrypt', '--wallet.path', dir], {}, () => {})).rejects.toThrow('--encrypt: expected a password in AQ_WALLET_PASSWORD, got none set');

      const env = { AQ_WALLET_PASSWORD: 'hunter2 hunter2' };
      await runKeys(['new', '--wallet.name', 'validator', '--wallet.hotkey', 'hk', '--encrypt', '--wallet.path', dir], env, (l) => lines.push(l));
      const sealed = walletHotkeyPath(dir, 'validator', 'hk');
      expect(fs.readFileSync(sealed).subarray(0, 5).toString()).toBe('$NACL');
      const printed = lines.at(-2)!.replace('hotkey ', '');
      expect(new Keyring({ type: 'sr25519' }).addFromUri(await hotkeySecret({ file: sealed, password: env.AQ_WALLET_PASSWORD })).address).toBe(printed);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
