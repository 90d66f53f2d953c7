import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Ema, normalizeMaxWeight, toU16Weights } from './weights.js';

describe('normalizeMaxWeight (the Python SDK algorithm, in float32)', () => {
  it('leaves weights under the limit alone, normalised', () => {
    const w = normalizeMaxWeight([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0.1);
    expect(w.every((v) => v === Math.fround(1 / 12))).toBe(true);
  });
  it('caps a dominant weight at the limit and keeps the sum at 1', () => {
    const w = normalizeMaxWeight([100, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0.1);
    expect(Math.max(...w)).toBeLessThanOrEqual(0.1 + 1e-6);
    expect(w.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6); // float32, as the SDK computes
    expect(w[0]).toBeGreaterThan(w[1]!);
  });
  it('returns uniform weights for a zero sum or a limit too small to honour', () => {
    expect(normalizeMaxWeight([0, 0, 0, 0], 0.5)).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(normalizeMaxWeight([5, 1], 0.4)).toEqual([0.5, 0.5]);
  });
});

describe('toU16Weights (the Python SDK, to the bit)', () => {
  it('equals the SDK on 300 random score vectors and subnet rules (scripts/sdk-weights-oracle.py, numpy 2)', () => {
    const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../../test/fixtures/sdk-weights.json'), 'utf8')) as
      { cases: { scores: number[]; minAllowedWeights: number; maxWeightsLimit: number; uids: number[]; values: number[] }[] };
    expect(fixture.cases.length).toBe(300);
    let padded = 0;
    for (const c of fixture.cases) {
      const got = toU16Weights(new Map(c.scores.map((s, i) => [i, Math.fround(s)])), c);
      expect(got, JSON.stringify(c)).toEqual({ uids: c.uids, values: c.values });
      if (c.uids.length > c.scores.filter((s) => s > 0).length) padded++;
    }
    // The fixture reaches the SDK's padding branches, not only the plain one.
    expect(padded).toBeGreaterThan(20);
  });
  it('max-upscales to 65535, rounds half to even, drops zeros, sorts by uid', () => {
    const r = toU16Weights(new Map([[3, 0.5], [1, 1], [2, 0], [7, 0.25]]), { maxWeightsLimit: 65535, minAllowedWeights: 0 });
    expect(r).toEqual({ uids: [1, 3, 7], values: [65535, 32768, 16384] });
    // 0.5 x 65535 = 32767.5: Python's round() gives 32768 (even); 1.5 / 3 x 65535 likewise.
    expect(toU16Weights(new Map([[0, 2], [1, 1]]), { maxWeightsLimit: 65535, minAllowedWeights: 0 }).values).toEqual([65535, 32768]);
  });
  it('gives every candidate the same weight when no score is above zero (negative scores count as zero)', () => {
    expect(toU16Weights(new Map([[1, -1], [2, 0]]), { maxWeightsLimit: 65535, minAllowedWeights: 0 })).toEqual({ uids: [1, 2], values: [65535, 65535] });
    expect(toU16Weights(new Map(), { maxWeightsLimit: 65535, minAllowedWeights: 0 })).toEqual({ uids: [], values: [] });
  });
  it('pads to MinAllowedWeights as the SDK does: every candidate gets 1e-5 more than its score', () => {
    const r = toU16Weights(new Map([[0, 1], [1, 0], [2, 0.5], [3, 0]]), { maxWeightsLimit: 65535, minAllowedWeights: 3 });
    expect(r.uids).toEqual([0, 1, 2, 3]);
    expect(r.values).toEqual([65535, 1, 32768, 1]);
  });
  it('honours the max weight limit', () => {
    const scores = new Map(Array.from({ length: 20 }, (_, i) => [i, i === 0 ? 100 : 1] as [number, number]));
    const r = toU16Weights(scores, { maxWeightsLimit: Math.round(0.1 * 65535), minAllowedWeights: 1 });
    const total = r.values.reduce((s, v) => s + v, 0);
    expect(r.values[0]! / total).toBeLessThanOrEqual(0.1 + 1e-3);
  });
  it('refuses scores that are not finite', () => {
    expect(() => toU16Weights(new Map([[0, Number.NaN]]), { maxWeightsLimit: 65535, minAllowedWeights: 0 })).toThrow('expected finite scores');
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
