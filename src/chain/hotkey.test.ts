import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady, mnemonicGenerate } from '@polkadot/util-crypto';
import { hotkeySecret } from './hotkey.js';

describe('validator hotkey', () => {
  it('reads a btcli hotkey file (phrase first, else seed) to the same address btcli records', async () => {
    await cryptoWaitReady();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'actiquest-hotkey-'));
    try {
      const phrase = mnemonicGenerate();
      const pair = new Keyring({ type: 'sr25519' }).addFromUri(phrase);
      const file = path.join(dir, 'default');
      fs.writeFileSync(file, JSON.stringify({ secretPhrase: phrase, ss58Address: pair.address, accountId: '0x', publicKey: '0x', privateKey: '0x', secretSeed: '0x' }));
      expect(new Keyring({ type: 'sr25519' }).addFromUri(hotkeySecret({ file })).address).toBe(pair.address);
      const seed = `0x${'ab'.repeat(32)}`;
      fs.writeFileSync(file, JSON.stringify({ secretPhrase: null, secretSeed: seed }));
      expect(new Keyring({ type: 'sr25519' }).addFromUri(hotkeySecret({ file })).address).toBe(new Keyring({ type: 'sr25519' }).addFromUri(seed).address);
      fs.writeFileSync(file, '$NACL...');
      expect(() => hotkeySecret({ file })).toThrow(/encrypted \(\$NACL\) files are not supported yet; use an unencrypted hotkey file or set AQ_HOTKEY_URI/);
      fs.writeFileSync(file, '{}');
      expect(() => hotkeySecret({ file })).toThrow('expected a secretPhrase or secretSeed, found neither');
      expect(() => hotkeySecret({ file: path.join(dir, 'missing') })).toThrow(/unreadable \(ENOENT\)/);
      // The secret never appears in an error.
      fs.writeFileSync(file, `not json ${phrase}`);
      expect(() => hotkeySecret({ file })).toThrow(/got text that does not parse$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
