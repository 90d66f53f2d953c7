/**
 * Long polls: callers wait until something changes (`notify`), a timeout passes, or their
 * AbortSignal fires, whichever is first; they then re-check what they wait for.
 */
export class Notifier {
  private readonly waiters = new Set<() => void>();

  /** Resolves at the next {@link notify}, after `ms`, or when `signal` aborts. */
  wait(ms = Infinity, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted || ms <= 0) return resolve();
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        signal?.removeEventListener('abort', wake);
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(wake, ms) : undefined;
      signal?.addEventListener('abort', wake, { once: true });
      this.waiters.add(wake);
    });
  }

  /** Wakes every waiter. */
  notify(): void {
    for (const w of [...this.waiters]) w();
  }
}
