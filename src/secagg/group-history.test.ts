import { describe, expect, it } from 'vitest';
import { GroupHistory, differByOne, formGroups } from './group-history.js';
import { Random } from '../util/index.js';

describe('differByOne', () => {
  it('flags an added, removed or swapped member and nothing else', () => {
    expect(differByOne(['a', 'b', 'c'], ['a', 'b', 'c', 'd'])).toBe(true);
    expect(differByOne(['a', 'b', 'c'], ['a', 'b'])).toBe(true);
    expect(differByOne(['a', 'b', 'c'], ['a', 'b', 'd'])).toBe(true);
    expect(differByOne(['a', 'b', 'c'], ['a', 'b', 'c'])).toBe(false);
    expect(differByOne(['a', 'b', 'c'], ['a', 'd', 'e'])).toBe(false);
  });
});

describe('formGroups', () => {
  it('splits into groups of at least the minimum, sizes within one, everyone placed once', () => {
    const members = Array.from({ length: 17 }, (_, i) => `n${i}`);
    const groups = formGroups(members, 5, new Random(1));
    expect(groups.map((g) => g.length).sort()).toEqual([5, 6, 6]);
    expect(groups.flat().sort()).toEqual([...members].sort());
    expect(formGroups(members.slice(0, 4), 5, new Random(1))).toEqual([]);
  });
});

describe('GroupHistory', () => {
  it('draws 60 rounds of 20 in groups of 5 with no group one member away from another in its window', () => {
    const members = Array.from({ length: 20 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    const history = new GroupHistory(16);
    const rng = new Random(3);
    const drawn: string[][][] = [];
    for (let r = 0; r < 60; r++) {
      const groups = history.draw(members, 5, rng);
      expect(groups.map((g) => g.length)).toEqual([5, 5, 5, 5]);
      history.add(groups);
      drawn.push(groups);
    }
    for (let r = 0; r < drawn.length; r++) {
      for (let e = Math.max(0, r - 16); e <= r; e++) {
        for (const g of drawn[r]!) for (const h of drawn[e]!) expect(differByOne(g, h)).toBe(false);
      }
    }
  });

  it('falls back to larger groups, then to none, when every smaller partition would clash', () => {
    const six = ['a', 'b', 'c', 'd', 'e', 'f'];
    const triples = six.flatMap((x, i) => six.slice(i + 1).flatMap((y, j) => six.slice(i + j + 2).map((z) => [x, y, z])));
    expect(triples).toHaveLength(20);
    const history = new GroupHistory(2);
    // Every triple is one swap from another remembered triple: only one group of six is left.
    history.add(triples);
    expect(history.draw(six, 3, new Random(1))).toEqual([six]);
    // ... and once a five of them is remembered too, nothing is.
    history.add([['a', 'b', 'c', 'd', 'e']]);
    expect(history.draw(six, 3, new Random(1))).toEqual([]);
    // The memory is a window: when the triples leave it, groups of three are drawn again.
    history.add([['u', 'v', 'w']]);
    expect(history.draw(six, 3, new Random(1)).map((g) => g.length)).toEqual([3, 3]);
  });
});
