import { beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady, mnemonicGenerate, sr25519Verify } from '@polkadot/util-crypto';
import { loadSigner, verifySr25519 } from './auth.js';

beforeAll(async () => {
  await cryptoWaitReady();
});

describe('sr25519 signers (wasm)', () => {
  it('derive the addresses @polkadot/keyring derives, and sign what util-crypto verifies and back', async () => {
    const mnemonic = mnemonicGenerate();
    for (const uri of ['//Alice', '//Lease', `0x${'07'.repeat(32)}`, mnemonic, `${mnemonic}//hard/soft`]) {
      const signer = await loadSigner({ uri });
      const pair = new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri(uri);
      expect(signer.address, uri).toBe(pair.address);
      const msg = new TextEncoder().encode(`message for ${uri}`);
      expect(sr25519Verify(msg, signer.sign(msg), pair.publicKey)).toBe(true);
      expect(verifySr25519(msg, pair.sign(msg), pair.publicKey)).toBe(true);
      const other = new Uint8Array(msg);
      other[0]! ^= 1;
      expect(verifySr25519(other, signer.sign(msg), pair.publicKey)).toBe(false);
    }
    expect((await loadSigner({ uri: '//Alice' })).address).toBe('5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY');
  });

  it('refuses malformed signatures and keys without throwing, and bad URIs with a message', async () => {
    expect(verifySr25519(new Uint8Array(3), new Uint8Array(63), new Uint8Array(32))).toBe(false);
    expect(verifySr25519(new Uint8Array(3), new Uint8Array(64), new Uint8Array(31))).toBe(false);
    await expect(loadSigner({ uri: 'not a mnemonic at all' })).rejects.toThrow(/^hotkey: expected a mnemonic, a 0x 32-byte seed or a \/\/Name URI/);
  });
});
