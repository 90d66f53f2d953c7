import { describe, expect, it } from 'vitest';
import { chooseValidators } from './discovery.js';
import { encodeIp } from '../chain/index.js';

const neuron = (uid: number, hotkey: string, permit: boolean, stake: bigint, host: string | null, port = 50051) => ({
  uid, hotkey, validatorPermit: permit, stake, axon: host ? { ...encodeIp(host), port } : { ip: 0n, ipType: 0, port: 0 },
});

describe('choosing the validators to work for', () => {
  const neurons = [
    neuron(0, 'A', true, 300n, '10.0.0.1'),
    neuron(1, 'B', true, 100n, '10.0.0.2', 6000),
    neuron(2, 'miner', false, 0n, '10.0.0.3'),
    neuron(3, 'silent', true, 50n, null),
    neuron(4, 'garbage', true, 50n, '10.0.0.4', 0),
  ];

  it('keeps validators with a permit and a usable endpoint, shares by stake, and says why others are out', () => {
    const { validators, skipped } = chooseValidators(neurons, {});
    expect(validators.map((v) => [v.hotkey, v.address, v.share])).toEqual([['A', '10.0.0.1:50051', 0.75], ['B', '10.0.0.2:6000', 0.25]]);
    expect(skipped).toEqual([{ hotkey: 'silent', reason: 'no endpoint announced' }, { hotkey: 'garbage', reason: 'port 0' }]);
  });

  it('honours pins and exclusions and never picks the node\'s own hotkey', () => {
    expect(chooseValidators(neurons, { pin: ['B'] }).validators.map((v) => [v.hotkey, v.share])).toEqual([['B', 1]]);
    expect(chooseValidators(neurons, { exclude: ['A'] }).validators.map((v) => v.hotkey)).toEqual(['B']);
    expect(chooseValidators(neurons, { self: 'A' }).validators.map((v) => v.hotkey)).toEqual(['B']);
  });

  it('shares equally when no chosen validator has stake', () => {
    const zero = [neuron(0, 'A', true, 0n, '10.0.0.1'), neuron(1, 'B', true, 0n, '10.0.0.2')];
    expect(chooseValidators(zero, {}).validators.map((v) => v.share)).toEqual([0.5, 0.5]);
  });
});
