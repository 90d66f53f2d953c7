/**
 * How a request's vectors reach the model process: the IPC message carries `{ rawBytes }` in
 * their place, and their bytes follow on the process's stdin, in the order the requests were
 * sent (`model-host.ts` writes them, `model-process.ts` reads them).
 */

/** A request's fields that hold vectors. */
export const RAW_VECTOR_FIELDS = ['params', 'sum'] as const;

/**
 * The vectors' bytes from a stream: each read takes the next `bytes` of it, in the order the reads
 * were asked for, whether the message or its bytes come first.
 */
export class RawVectors {
  private readonly waiting: { out: Uint8Array; at: number; done: () => void }[] = [];
  private readonly arrived: Buffer[] = [];

  constructor(input: NodeJS.ReadableStream) {
    input.on('data', (b: Buffer) => {
      this.arrived.push(b);
      this.drain();
    });
  }

  /** The next `bytes` bytes (a multiple of 4) as a vector of their own. */
  read(bytes: number): Promise<Float32Array> {
    if (!Number.isInteger(bytes) || bytes < 0 || bytes % 4 !== 0) return Promise.reject(new RangeError(`a vector's bytes: expected a multiple of 4, got ${bytes}`));
    return new Promise((resolve) => {
      const v = new Float32Array(bytes / 4);
      this.waiting.push({ out: new Uint8Array(v.buffer), at: 0, done: () => resolve(v) });
      this.drain();
    });
  }

  private drain(): void {
    while (this.waiting.length > 0) {
      const w = this.waiting[0]!;
      if (w.at === w.out.length) {
        this.waiting.shift();
        w.done();
        continue;
      }
      const b = this.arrived[0];
      if (!b) return;
      const n = Math.min(b.length, w.out.length - w.at);
      w.out.set(b.subarray(0, n), w.at);
      w.at += n;
      if (n === b.length) this.arrived.shift();
      else this.arrived[0] = b.subarray(n);
    }
  }
}
