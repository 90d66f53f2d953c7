import { beforeAll, describe, expect, it } from 'vitest';
import { loadSigner } from '../chain/index.js';
import { Keyring } from '@polkadot/keyring';
import { createHash } from 'node:crypto';
import { cryptoWaitReady, decodeAddress, encodeAddress, mnemonicGenerate, sr25519Verify } from '@polkadot/util-crypto';
import { HEADER_AUDIENCE, HEADER_HOTKEY, HEADER_SESSION, newSession, RequestVerifier, SESSION_LIFETIME_MS, sessionPayload, signedMetadata, verifySr25519 } from './auth.js';

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

describe('session keys', () => {
  it('sign requests with an ed25519 key the hotkey certifies, renewed once half its lifetime is gone, verified by the server', async () => {
    const signer = await loadSigner({ uri: '//Session' });
    const t0 = 1_800_000_000_000;
    let now = t0;
    const verifier = new RequestVerifier({ now: () => now, maxSkewMs: 60_000 });
    const body = Buffer.from('request body');
    const digest = createHash('sha256').update(body).digest();
    const at = (ms: number) => {
      now = ms;
      return signedMetadata(signer, '/actiquest.v1.Coordinator/Heartbeat', body, ms, { session: true });
    };
    const first = at(t0), later = at(t0 + 3600_000), renewed = at(t0 + SESSION_LIFETIME_MS / 2 + 1);
    const header = (md: ReturnType<typeof at>) => (md.get(HEADER_SESSION)[0] as Buffer).toString('hex');
    expect(header(first)).toBe(header(later));
    expect(header(renewed)).not.toBe(header(first));
    // The certificate: the session's public key, its expiry, and the hotkey's signature over both.
    const raw = first.get(HEADER_SESSION)[0] as Buffer;
    expect(raw).toHaveLength(104);
    expect(Number(raw.readBigUInt64BE(32))).toBe(t0 + SESSION_LIFETIME_MS);
    expect(verifySr25519(sessionPayload(signer.address, raw.subarray(0, 32), t0 + SESSION_LIFETIME_MS), raw.subarray(40), decodeAddress(signer.address))).toBe(true);
    // The server takes each, at its time, and refuses the first session once it has expired.
    for (const [md, ms] of [[first, t0], [later, t0 + 3600_000], [renewed, t0 + SESSION_LIFETIME_MS / 2 + 1]] as const) {
      now = ms;
      expect(verifier.verify('/actiquest.v1.Coordinator/Heartbeat', md, digest, 'node')).toBe(signer.address);
    }
    now = t0 + SESSION_LIFETIME_MS + 1000;
    const stale = signedMetadata(signer, '/actiquest.v1.Coordinator/Heartbeat', body, now, { session: newSession(signer, t0) });
    expect(() => verifier.verify('/actiquest.v1.Coordinator/Heartbeat', stale, digest, 'node')).toThrow(/^x-aq-session-bin: expected an unexpired session, got one that expired 1 s ago$/);
    // A session's signature does not carry over to another method.
    const md = at(now);
    expect(() => verifier.verify('/actiquest.v1.Coordinator/GetTask', md, digest, 'node')).toThrow(/session key over its hotkey, the server's, the method, body digest, timestamp and nonce, got one that does not verify$/);
  });
});

describe('replays', () => {
  it('bind a request to its signer\'s one address and to the server it names', async () => {
    const [trainer, serverA, serverB] = await Promise.all(['//Trainer', '//ServerA', '//ServerB'].map((uri) => loadSigner({ uri })));
    const path = '/actiquest.v1.Coordinator/Heartbeat';
    const body = Buffer.from('heartbeat');
    const digest = createHash('sha256').update(body).digest();
    const a = new RequestVerifier({ audience: serverA!.address });
    const b = new RequestVerifier({ audience: serverB!.address });
    const md = signedMetadata(trainer!, path, body, Date.now(), { session: false, audience: serverA!.address });
    expect(a.verify(path, md, digest, 'node')).toBe(trainer!.address);
    // The same request, to the server it names again, and to another server.
    expect(() => a.verify(path, md, digest, 'node')).toThrow(/^x-aq-nonce: expected a nonce not used before, got one 5\w+ already used \(a replayed request\)$/);
    expect(() => b.verify(path, md, digest, 'node')).toThrow(/^x-aq-audience: expected this server's hotkey, 5\w+ .*, got "5\w+" \(a request meant for another server\)$/);
    // Naming the other server after signing breaks the signature.
    const renamed = md.clone();
    renamed.set(HEADER_AUDIENCE, serverB!.address);
    expect(() => b.verify(path, renamed, digest, 'node')).toThrow(/^x-aq-signature-bin: expected a signature by 5\w+ over its hotkey, the server's/);
    // The hotkey under another SS58 prefix (the same key) is refused before the nonce is looked up.
    for (const prefix of [0, 2]) {
      const other = md.clone();
      other.set(HEADER_HOTKEY, encodeAddress(decodeAddress(trainer!.address), prefix));
      expect(() => a.verify(path, other, digest, 'node')).toThrow(/^x-aq-hotkey: expected the key's address in the generic SS58 format \(prefix 42\), 5\w+, got "\w+"$/);
    }
    // A long value quoted in an error is cut, with its length.
    const long = md.clone();
    long.set(HEADER_HOTKEY, 'x'.repeat(10_000));
    expect(() => a.verify(path, long, digest, 'node')).toThrow(/^x-aq-hotkey: expected an SS58 address, got "x{64}"\.\.\. \(10000 characters\)$/);
  });
});
