import { describe, expect, it } from 'vitest';
import { Ema, normalizeMaxWeight, toU16Weights } from './weights.js';

describe('normalizeMaxWeight (the Python SDK algorithm)', () => {
  it('leaves weights under the limit alone, normalised', () => {
    const w = normalizeMaxWeight([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0.1);
    expect(w.every((v) => Math.abs(v - 1 / 12) < 1e-12)).toBe(true);
  });
  it('caps a dominant weight at the limit and keeps the sum at 1', () => {
    const w = normalizeMaxWeight([100, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0.1);
    expect(Math.max(...w)).toBeLessThanOrEqual(0.1 + 1e-6);
    expect(w.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 9);
    expect(w[0]).toBeGreaterThan(w[1]!);
  });
  it('returns uniform weights for a zero sum or a limit too small to honour', () => {
    expect(normalizeMaxWeight([0, 0, 0, 0], 0.5)).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(normalizeMaxWeight([5, 1], 0.4)).toEqual([0.5, 0.5]);
  });
});

describe('toU16Weights', () => {
  it('max-upscales to 65535, rounds, drops zeros, sorts by uid', () => {
    const r = toU16Weights(new Map([[3, 0.5], [1, 1], [2, 0], [7, 0.25]]), { maxWeightsLimit: 65535, minAllowedWeights: 0 });
    expect(r).toEqual({ uids: [1, 3, 7], values: [65535, 32768, 16384] });
  });
  it('treats negative scores as zero and returns nothing when all are zero', () => {
    expect(toU16Weights(new Map([[1, -1], [2, 0]]), { maxWeightsLimit: 65535, minAllowedWeights: 0 })).toEqual({ uids: [], values: [] });
  });
  it('tops up to min allowed weights with the next best uids at value 1', () => {
    const r = toU16Weights(new Map([[0, 1], [1, 0], [2, 0.0000001], [3, 0]]), { maxWeightsLimit: 65535, minAllowedWeights: 3 });
    expect(r.uids).toHaveLength(3);
    expect(r.uids).toContain(0);
    expect(r.values[r.uids.indexOf(0)]).toBe(65535);
  });
  it('honours the max weight limit', () => {
    const scores = new Map(Array.from({ length: 20 }, (_, i) => [i, i === 0 ? 100 : 1] as [number, number]));
    const r = toU16Weights(scores, { maxWeightsLimit: Math.round(0.1 * 65535), minAllowedWeights: 1 });
    const total = r.values.reduce((s, v) => s + v, 0);
    expect(r.values[0]! / total).toBeLessThanOrEqual(0.1 + 1e-3);
  });
});

describe('Ema', () => {
  it('starts at the first value and moves alpha of the way', () => {
    const e = new Ema(0.5);
    expect(e.update('a', 1)).toBe(1);
    expect(e.update('a', 0)).toBe(0.5);
    expect(e.get('b')).toBeUndefined();
  });
});
