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
      expect(new Keyring({ type: 'sr25519' }).addFromUri((await hotkeySecret({ file }))).address).toBe(pair.address);
      const seed = `0x${'ab'.repeat(32)}`;
      fs.writeFileSync(file, JSON.stringify({ secretPhrase: null, secretSeed: seed }));
      expect(new Keyring({ type: 'sr25519' }).addFromUri((await hotkeySecret({ file }))).address).toBe(new Keyring({ type: 'sr25519' }).addFromUri(seed).address);
      fs.writeFileSync(file, '{}');
      await expect(hotkeySecret({ file })).rejects.toThrow('expected a secretPhrase or secretSeed, found neither');
      await expect(hotkeySecret({ file: path.join(dir, 'missing') })).rejects.toThrow(/unreadable \(ENOENT\)/);
      // The secret never appears in an error.
      fs.writeFileSync(file, `not json ${phrase}`);
      await expect(hotkeySecret({ file })).rejects.toThrow(/got text that does not parse$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens an encrypted ($NACL) btcli file with the password from the environment, and refuses without it or with a wrong one', async () => {
    await cryptoWaitReady();
    // Made with libsodium (crypto_pwhash Argon2i, sensitive limits; crypto_secretbox) from
    // substrate's public development phrase: no real key.
    const file = path.join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'hotkey-nacl-dev');
    const secret = await hotkeySecret({ file, password: 'correct horse battery staple' });
    expect(new Keyring({ type: 'sr25519' }).addFromUri(secret).address).toBe('5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV');
    await expect(hotkeySecret({ file })).rejects.toThrow(`hotkey file ${file}: encrypted ($NACL); set AQ_WALLET_PASSWORD to the wallet password`);
    await expect(hotkeySecret({ file, password: 'wrong' })).rejects.toThrow('the password in AQ_WALLET_PASSWORD does not open this encrypted ($NACL) file');
  }, 120_000);
});
