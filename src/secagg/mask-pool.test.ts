/**
 * Shared vectors given back for reuse. V8 does not count shared memory toward collecting
 * garbage, so a round that let go of each group's SharedArrayBuffer kept them all resident;
 * given back, each serves the next vector of its length. The memory test runs in a child
 * process of its own, measured by its resident memory.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { recycleWords, sharedWords } from './mask-pool.js';
import { tsxLoaderUrl } from '../util/index.js';

const VECTORS = 16;
const MIB = 32;

const SCRIPT = `
import { MaskPool, recycleWords, sharedWords } from ${JSON.stringify(new URL('./mask-pool.ts', import.meta.url).href)};
const pool = new MaskPool(2);
const rss = () => process.memoryUsage().rss / 2 ** 20;
// The threads started and warm.
await pool.apply(sharedWords(${MIB} * 2 ** 18), [{ seed: new Uint8Array(32).fill(1), sign: 1 }]);
await new Promise((r) => setTimeout(r, 100));
const before = rss();
let sum = 0;
for (let k = 0; k < ${VECTORS}; k++) {
  const words = sharedWords(${MIB} * 2 ** 18);
  await pool.apply(words, [{ seed: new Uint8Array(32).fill(k + 2), sign: 1 }]);
  sum += words[k];
  recycleWords(words);
}
await new Promise((r) => setTimeout(r, 100));
console.log(JSON.stringify({ grownMiB: rss() - before, sum }));
await pool.close();
`;

describe('shared vectors', () => {
  it('given back, serve the next of their length zeroed, once each', () => {
    const a = sharedWords(1000).fill(7);
    recycleWords(a);
    recycleWords(a);
    const b = sharedWords(1000);
    expect(b.buffer).toBe(a.buffer);
    expect(b.every((w) => w === 0)).toBe(true);
    // Given back twice, handed out once.
    expect(sharedWords(1000).buffer).not.toBe(a.buffer);
    // Another length, or a view of part of a vector, is not served from it.
    recycleWords(b);
    expect(sharedWords(999).buffer).not.toBe(b.buffer);
    const c = sharedWords(2000);
    recycleWords(c.subarray(1000));
    expect(sharedWords(1000).buffer).toBe(b.buffer);
    expect(sharedWords(1000).buffer).not.toBe(c.buffer);
  });

  it(`masked by the pool's threads and given back, ${VECTORS} vectors of ${MIB} MiB one after another take the memory of a few`, () => {
    const out = execFileSync(process.execPath, ['--import', tsxLoaderUrl(), '--input-type=module', '-e', SCRIPT], { encoding: 'utf8' });
    const { grownMiB, sum } = JSON.parse(out.trim().split('\n').at(-1)!) as { grownMiB: number; sum: number };
    // The masks were applied (a vector of zeros plus a mask is not all zeros).
    expect(sum).toBeGreaterThan(0);
    expect(grownMiB).toBeLessThan(4 * MIB);
  }, 60_000);
});
