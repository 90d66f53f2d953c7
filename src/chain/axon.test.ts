import { describe, expect, it } from 'vitest';
import { axonAddress, encodeIp } from './axon.js';

describe('axon endpoints as the chain holds them', () => {
  it('encodes IPv4 and IPv6 addresses to the u128 and type serve_axon takes, and reads them back', () => {
    expect(encodeIp('127.0.0.2')).toEqual({ ip: 0x7f000002n, ipType: 4 });
    expect(encodeIp('203.0.113.9')).toEqual({ ip: (203n << 24n) | (113n << 8n) | 9n, ipType: 4 });
    expect(axonAddress({ ...encodeIp('203.0.113.9'), port: 50051 })).toEqual({ address: '203.0.113.9:50051' });
    expect(encodeIp('2001:db8::1')).toEqual({ ip: (0x2001n << 112n) | (0xdb8n << 96n) | 1n, ipType: 6 });
    expect(axonAddress({ ...encodeIp('2001:db8::1'), port: 443 })).toEqual({ address: '[2001:db8:0:0:0:0:0:1]:443' });
    expect(() => encodeIp('validator.example.com')).toThrow('expected an IPv4 or IPv6 address');
  });

  it('calls garbage unusable, with the reason: nothing announced, port 0, out-of-range values, unknown types', () => {
    expect(axonAddress({ ip: 0n, ipType: 0, port: 0 })).toEqual({ unusable: 'no endpoint announced' });
    expect(axonAddress({ ip: 0x7f000002n, ipType: 4, port: 0 })).toEqual({ unusable: 'port 0' });
    expect(axonAddress({ ip: 1n << 40n, ipType: 4, port: 1 })).toEqual({ unusable: `IPv4 value ${1n << 40n}` });
    expect(axonAddress({ ip: 1n, ipType: 6, port: 1 })).toEqual({ unusable: 'IPv6 value 1' });
    expect(axonAddress({ ip: 5n, ipType: 9, port: 1 })).toEqual({ unusable: 'IP type 9' });
  });
});
