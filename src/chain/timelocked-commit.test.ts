import { describe, expect, it } from 'vitest';
import { TypeRegistry } from '@polkadot/types';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady, decodeAddress } from '@polkadot/util-crypto';
import { crv3Payload, crv4Payload, revealBlockOf, revealRound, timelockedCallArgs, PULSE_DELAY } from './timelocked-commit.js';
import { QUICKNET, testBeacon, timelockDecrypt, timelockEncrypt } from './timelock.js';

describe('timelocked commits: rounds, blocks and payloads', () => {
  const beacon = { ...QUICKNET };

  it('picks the drand round as the SDK does: the reveal epoch\'s block, at least 24 pulses ahead, minus 24', () => {
    const now = QUICKNET.genesisTime + 3000;
    // tempo 100, block 1000, netuid 1, two epochs: epoch 9 now, reveal at block 11 x 101 - 2 = 1109, 109 blocks of 12 s.
    expect(revealRound({ block: 1000, netuid: 1, tempo: 100, revealPeriodEpochs: 2, blockTimeSeconds: 12, nowSeconds: now, beacon })).toBe(Math.ceil((3000 + 109 * 12) / 3) - PULSE_DELAY);
    // Too close to the reveal block for 24 pulses: later epochs until 72 s are left (tempo 10, 1 s blocks: block 98).
    expect(revealRound({ block: 19, netuid: 0, tempo: 10, revealPeriodEpochs: 1, blockTimeSeconds: 1, nowSeconds: now, beacon })).toBe(Math.ceil((3000 + 79) / 3) - PULSE_DELAY);
  });

  it('knows the block the runtime reveals at (netuid 2, tempo 10, two epochs: commits at 27 and 28 revealed at 40)', () => {
    expect(revealBlockOf(27, 2, 10, 2)).toBe(40);
    expect(revealBlockOf(28, 2, 10, 2)).toBe(40);
    // One epoch: the epoch block that closes the commit's own epoch.
    expect(revealBlockOf(27, 2, 10, 1)).toBe(29);
  });

  it('encodes the CRv3 payload and the CRv4 payload as the runtime\'s structs, and they survive the timelock', async () => {
    await cryptoWaitReady();
    const registry = new TypeRegistry();
    // pallets/subtensor/src/coinbase/reveal_commits.rs: WeightsTlockPayload and its legacy form.
    registry.register({
      LegacyWeightsTlockPayload: { uids: 'Vec<u16>', values: 'Vec<u16>', version_key: 'u64' },
      WeightsTlockPayload: { hotkey: 'Vec<u8>', uids: 'Vec<u16>', values: 'Vec<u16>', version_key: 'u64' },
    });
    const w = { uids: [1, 5, 300], values: [65535, 12, 4000] };
    const v3 = crv3Payload(registry, w, 7);
    expect(registry.createType('LegacyWeightsTlockPayload', v3).toJSON()).toEqual({ uids: w.uids, values: w.values, version_key: 7 });
    const hotkey = new Keyring({ type: 'sr25519' }).addFromUri('//ActiquestValidator').address;
    const b = testBeacon(99n);
    const sealed = timelockEncrypt(crv4Payload(registry, hotkey, w, 9), 1234, b.publicKey);
    const opened = registry.createType('WeightsTlockPayload', timelockDecrypt(sealed, b.sign(1234)));
    expect(opened.toJSON()).toEqual({ hotkey: `0x${Buffer.from(decodeAddress(hotkey)).toString('hex')}`, uids: w.uids, values: w.values, version_key: 9 });
    // The runtime decodes the hotkey bytes as its AccountId32: exactly 32 bytes.
    expect(decodeAddress(hotkey).length).toBe(32);
  });

  it('builds each call\'s arguments as the runtime source declares them: the commit as bytes with one length prefix', () => {
    const registry = new TypeRegistry();
    // dispatches.rs: NetUid(u16), MechId(u8), BoundedVec<u8> (SCALE: compact length, bytes), u64, u16.
    const ct = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 251));
    const encode = (types: string, args: unknown[]) => registry.createType(types, args).toU8a();
    const prefix = registry.createType('Compact<u32>', ct.length).toU8a();
    const commitBytes = Buffer.concat([prefix, ct]);
    const le = (n: number, bytes: number) => Buffer.from(Array.from({ length: bytes }, (_, i) => Math.floor(n / 256 ** i) % 256));
    expect(Buffer.from(encode('(u16, Bytes, u64)', timelockedCallArgs('crv3', 7, ct, 123456, 0)))).toEqual(Buffer.concat([le(7, 2), commitBytes, le(123456, 8)]));
    expect(Buffer.from(encode('(u16, Bytes, u64, u16)', timelockedCallArgs('crv4', 7, ct, 123456, 4)))).toEqual(Buffer.concat([le(7, 2), commitBytes, le(123456, 8), le(4, 2)]));
    expect(Buffer.from(encode('(u16, u8, Bytes, u64, u16)', timelockedCallArgs('crv4-mechanism', 7, ct, 123456, 4)))).toEqual(Buffer.concat([le(7, 2), Buffer.from([0]), commitBytes, le(123456, 8), le(4, 2)]));
  });
});
