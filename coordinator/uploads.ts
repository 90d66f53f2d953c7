/**
 * Updates in flight: one upload per task at a time (a newer one replaces the older, as when a
 * trainer retries over a new connection), and at most `maxBytes` reserved by all of them, taken
 * from the header's declared size before a byte is buffered.
 */
import { UploadBudgetError, UploadSupersededError } from '../src/errors.js';

interface Slot {
  bytes: number;
  release: () => void;
  stop: (err: Error) => void;
}

export class UploadSlots {
  private held = 0;
  private readonly byTask = new Map<string, Slot>();

  constructor(readonly maxBytes: number) {}

  /**
   * Reserves `bytes` for an upload of `taskId`; `stop` ends it early with an error (replaced).
   * Returns what gives the bytes back (once). Throws {@link UploadBudgetError} when they do not fit.
   */
  take(taskId: string, bytes: number, stop: (err: Error) => void): () => void {
    const older = this.byTask.get(taskId);
    if (older) {
      older.release();
      older.stop(new UploadSupersededError(taskId));
    }
    if (this.held + bytes > this.maxBytes) throw new UploadBudgetError(bytes, this.held, this.maxBytes);
    this.held += bytes;
    let released = false;
    const slot: Slot = {
      bytes,
      stop,
      release: () => {
        if (released) return;
        released = true;
        this.held -= bytes;
        if (this.byTask.get(taskId) === slot) this.byTask.delete(taskId);
      },
    };
    this.byTask.set(taskId, slot);
    return slot.release;
  }
}
