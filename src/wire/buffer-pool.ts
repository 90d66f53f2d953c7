/**
 * A pool of receive buffers by size. An update is received into a buffer, folded into the
 * round's sum, and the buffer goes back: the next upload reuses warm memory instead of
 * page-faulting a fresh allocation in (measured here: a copy into new memory runs at about
 * 1.6 GB/s, into reused memory several times faster). Idle buffers are dropped after
 * `idleMs`, so memory a burst of uploads took (or an attack) goes back once it has passed.
 */
export class BufferPool {
  private readonly free = new Map<number, { buf: Buffer; since: number }[]>();
  private held = 0;
  private readonly timer: NodeJS.Timeout;

  /** Keeps at most `maxBytes` of idle buffers, each for at most `idleMs`. */
  constructor(private readonly maxBytes = 256 << 20, private readonly idleMs = 30_000) {
    this.timer = setInterval(() => this.sweep(), Math.max(1000, idleMs / 3));
    this.timer.unref();
  }

  /** A buffer of exactly `size` bytes, reused when one is idle. Contents are unspecified. */
  acquire(size: number): Buffer {
    const list = this.free.get(size);
    const idle = list?.pop();
    if (idle) {
      this.held -= size;
      if (list!.length === 0) this.free.delete(size);
      return idle.buf;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /** Returns a buffer for reuse (dropped when the pool is full). */
  release(buf: Buffer): void {
    if (this.held + buf.length > this.maxBytes) return;
    const list = this.free.get(buf.length) ?? [];
    list.push({ buf, since: Date.now() });
    this.free.set(buf.length, list);
    this.held += buf.length;
  }

  /** Bytes idle in the pool. */
  get idleBytes(): number {
    return this.held;
  }

  /** Drops buffers idle longer than `idleMs`. */
  sweep(now = Date.now()): void {
    for (const [size, list] of this.free) {
      const keep = list.filter((e) => now - e.since < this.idleMs);
      this.held -= (list.length - keep.length) * size;
      if (keep.length) this.free.set(size, keep);
      else this.free.delete(size);
    }
  }

  /** Stops the sweep timer (the pool stays usable). */
  close(): void {
    clearInterval(this.timer);
  }
}
