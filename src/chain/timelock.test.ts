import fs from 'node:fs';
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { initSync, tld, tle } from '@ideallabs/timelock_wasm_wrapper';
import { QUICKNET, roundMessage, testBeacon, timelockDecrypt, timelockEncrypt, verifyBeaconSignature } from './timelock.js';

/** drand quicknet's signature of round 1000 (public; TIMELOCK.md). */
const QUICKNET_1000 = 'b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39';
const fixed = { esk: Buffer.alloc(32, 1), sigmaSeed: Buffer.alloc(32, 2), nonce: Buffer.alloc(12, 3) };

// The Rust `tle` crate compiled to wasm: the implementation subtensor reveals with.
const rust = {
  encrypt: (round: number, msg: Uint8Array, esk: Uint8Array, pk: string): Buffer =>
    Buffer.from(tle(Array.from(roundMessage(round)), Array.from(msg), Array.from(esk), Array.from(Buffer.from(pk, 'hex')), 'bls12_381') as number[]),
  decrypt: (ct: Uint8Array, sig: string): Buffer => Buffer.from(tld(Array.from(ct), Array.from(Buffer.from(sig, 'hex')), 'bls12_381') as number[]),
};

describe('timelock encryption (tle-compatible, BLS12-381)', () => {
  beforeAll(() => {
    const require = createRequire(import.meta.url);
    initSync({ module: fs.readFileSync(require.resolve('@ideallabs/timelock_wasm_wrapper/timelock_wasm_wrapper_bg.wasm')) });
  });

  it('knows quicknet: the round-1000 signature verifies under its key, and not as round 1001', () => {
    expect(verifyBeaconSignature(1000, QUICKNET_1000)).toBe(true);
    expect(verifyBeaconSignature(1001, QUICKNET_1000)).toBe(false);
    expect(verifyBeaconSignature(1000, 'zz')).toBe(false);
  });

  it('opens what it sealed to quicknet round 1000 with the real signature; the layout is 244 bytes plus the payload', () => {
    const payload = Buffer.from('uids and values');
    const ct = timelockEncrypt(payload, 1000, QUICKNET.publicKey, fixed);
    expect(ct.length).toBe(244 + payload.length);
    // Fixed randomness gives fixed bytes; the cipher suite closes them.
    expect(timelockEncrypt(payload, 1000, QUICKNET.publicKey, fixed).equals(ct)).toBe(true);
    expect(ct.subarray(-16).toString('latin1')).toBe('\x08\0\0\0\0\0\0\0AES_GCM_');
    expect(timelockDecrypt(ct, QUICKNET_1000).equals(payload)).toBe(true);
  });

  it('is byte-compatible with the Rust tle crate both ways', () => {
    const payload = Buffer.from('weights for the chain to reveal');
    // Ours, opened by Rust with quicknet's real signature.
    expect(rust.decrypt(timelockEncrypt(payload, 1000), QUICKNET_1000).equals(payload)).toBe(true);
    // Rust's, opened by ours.
    expect(timelockDecrypt(rust.encrypt(1000, payload, Buffer.alloc(32, 9), QUICKNET.publicKey), QUICKNET_1000).equals(payload)).toBe(true);
    // And under a beacon key of our own, round 77.
    const beacon = testBeacon(0x1234567890abcdefn);
    expect(rust.decrypt(timelockEncrypt(payload, 77, beacon.publicKey), beacon.sign(77)).equals(payload)).toBe(true);
    expect(timelockDecrypt(rust.encrypt(77, payload, Buffer.alloc(32, 5), beacon.publicKey), beacon.sign(77)).equals(payload)).toBe(true);
  });

  it('refuses another round\'s signature, another beacon\'s, and malformed bytes, each with a reason', () => {
    const beacon = testBeacon(42n);
    const ct = timelockEncrypt(Buffer.from('x'), 10, beacon.publicKey);
    expect(timelockDecrypt(ct, beacon.sign(10)).toString()).toBe('x');
    expect(() => timelockDecrypt(ct, beacon.sign(11))).toThrow('does not open this ciphertext');
    expect(() => timelockDecrypt(ct, testBeacon(43n).sign(10))).toThrow('does not open this ciphertext');
    expect(() => timelockDecrypt(ct, 'abcd')).toThrow('not a G1 point');
    expect(() => timelockDecrypt(ct.subarray(0, 50), beacon.sign(10))).toThrow('shorter than its header');
    expect(() => timelockDecrypt(ct.subarray(0, ct.length - 3), beacon.sign(10))).toThrow(/cipher suite|longer than the bytes left/);
    const badSuite = Buffer.from(ct);
    badSuite[badSuite.length - 1] = 0x41;
    expect(() => timelockDecrypt(badSuite, beacon.sign(10))).toThrow('expected "AES_GCM_"');
    const tampered = Buffer.from(ct);
    tampered[200] = tampered[200]! ^ 1;
    expect(() => timelockDecrypt(tampered, beacon.sign(10))).toThrow();
  });
});
