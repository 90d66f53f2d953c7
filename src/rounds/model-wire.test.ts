import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BUDGET } from '../model/index.js';
import { ModelHost } from './model-host.js';
import { RawVectors } from './model-wire.js';

const bytesOf = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

describe('RawVectors', () => {
  it('gives each read the next bytes of the stream, in the order asked, however the bytes are cut', async () => {
    const input = new PassThrough();
    const vectors = new RawVectors(input);
    const a = Float32Array.from([1, 2]), b = Float32Array.from({ length: 1000 }, (_, i) => i / 7), c = new Float32Array(0), d = Float32Array.from([-3]);
    const all = Buffer.concat([a, b, c, d].map(bytesOf));
    // Bytes before any read, then reads, then the rest in pieces that split vectors and words.
    input.write(all.subarray(0, 3));
    const reads = [vectors.read(a.byteLength), vectors.read(b.byteLength), vectors.read(c.byteLength), vectors.read(d.byteLength)];
    for (let at = 3; at < all.length; at += 997) input.write(all.subarray(at, Math.min(all.length, at + 997)));
    const got = await Promise.all(reads);
    expect(got).toEqual([a, b, c, d]);
  });

  it('refuses a length that is not whole words', async () => {
    await expect(new RawVectors(new PassThrough()).read(6)).rejects.toThrow(/expected a multiple of 4, got 6/);
  });
});

describe('ModelHost', () => {
  let host: ModelHost;
  let params: Float32Array;
  beforeAll(async () => {
    const started = await ModelHost.start(
      { task: 'exercise', spec: { family: 'mlp', hidden: [16] }, modelSeed: 1, budget: DEFAULT_BUDGET, batch: 8, validationSeed: 'wire', validationSamples: 40, backend: 'cpu' },
      { memoryLimitBytes: 2 ** 31, jobId: 'wire-test' },
    );
    host = started.host;
    params = started.built.params;
  }, 60_000);
  afterAll(() => host.close());

  it('evaluates steps sent back to back, each with its own sum, as the same parameters sent whole', async () => {
    const sums = [0.5, -1, 2].map((k) => Float32Array.from(params, (_, i) => k * Math.sin(i)));
    // Sent together: the parameters ride with the first request, the sums' bytes follow one another.
    const steps = await Promise.all(sums.map((sum) => host.evaluateStep(params, 'p0', sum, 0.1)));
    for (const [i, sum] of sums.entries()) {
      const stepped = Float32Array.from(params, (p, j) => p + sum[j]! * 0.1);
      expect(steps[i]).toEqual(await host.evaluate(stepped, `p${i + 1}`));
    }
    expect(new Set(steps.map((s) => s.loss)).size).toBe(3);
  }, 60_000);
});
