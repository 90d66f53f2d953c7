/**
 * The mask pool's threads must not keep the vectors they masked: each job brings a vector's
 * SharedArrayBuffer into a thread, and its memory is freed only once every thread that saw it
 * has collected its handle. Run in a child process of its own (with `--expose-gc`, so that the
 * main thread's collection can be asked for) and measured by its resident memory.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { tsxLoaderUrl } from '../util/index.js';

const VECTORS = 16;
const MIB = 32;

const SCRIPT = `
import { MaskPool, sharedWords } from ${JSON.stringify(new URL('./mask-pool.ts', import.meta.url).href)};
const pool = new MaskPool(2);
const rss = () => process.memoryUsage().rss / 2 ** 20;
const settle = async () => { for (let i = 0; i < 3; i++) { await new Promise((r) => setTimeout(r, 50)); globalThis.gc(); } };
// The threads started and warm, one vector masked and let go.
await pool.apply(sharedWords(${MIB} * 2 ** 18), [{ seed: new Uint8Array(32).fill(1), sign: 1 }]);
await settle();
const before = rss();
let sum = 0;
for (let k = 0; k < ${VECTORS}; k++) {
  const words = sharedWords(${MIB} * 2 ** 18);
  await pool.apply(words, [{ seed: new Uint8Array(32).fill(k + 2), sign: 1 }]);
  sum += words[k];
}
await settle();
console.log(JSON.stringify({ grownMiB: rss() - before, sum }));
await pool.close();
`;

describe('mask pool', () => {
  it(`lets go of the vectors it masked: ${VECTORS} vectors of ${MIB} MiB, one after another, leave at most three behind`, () => {
    const out = execFileSync(process.execPath, ['--expose-gc', '--import', tsxLoaderUrl(), '--input-type=module', '-e', SCRIPT], { encoding: 'utf8' });
    const { grownMiB, sum } = JSON.parse(out.trim().split('\n').at(-1)!) as { grownMiB: number; sum: number };
    // The masks were applied (a vector of zeros plus a mask is not all zeros).
    expect(sum).toBeGreaterThan(0);
    expect(grownMiB).toBeLessThan(3 * MIB);
  }, 60_000);
});
