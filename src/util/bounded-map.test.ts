import { describe, expect, it } from 'vitest';
import { BoundedMap } from './bounded-map.js';

describe('BoundedMap', () => {
  it('forgets the oldest entry when a new key would pass its size, and keeps all when a known key is set again', () => {
    const m = new BoundedMap<string, number>(2);
    m.set('a', 1).set('b', 2);
    m.set('a', 3);
    expect([...m]).toEqual([['a', 3], ['b', 2]]);
    m.set('c', 4);
    expect([...m]).toEqual([['b', 2], ['c', 4]]);
    expect(m.size).toBe(2);
  });
});
