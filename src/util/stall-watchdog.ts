/**
 * Says where a process's event loop is stuck, when it is. The main thread bumps a counter in
 * shared memory twice a second; a worker thread watches it, and when it has not moved for
 * `stallMs` the worker asks the main thread's inspector (node:inspector, connectToMainThread) to
 * pause: JavaScript that loops stops at its next interrupt check, and the worker logs the stack
 * it stopped in, then resumes it. A main thread that does not pause within a second is not
 * running JavaScript: the worker logs the system call it waits in (Linux /proc). One line when
 * the stall is seen, one when the loop runs again; both written by the worker, since the main
 * thread cannot. The cost while nothing is stuck: one timer each side.
 */
import { Worker } from 'node:worker_threads';

/** Options of {@link watchStalls}. */
export interface StallWatchOptions {
  /** The log lines' component. */
  component: string;
  /** How long the loop may not turn before it is reported (default 5 s). */
  stallMs?: number;
}

const BEAT_MS = 500;

// Plain CommonJS, evaluated in the worker: it must run while the main thread (and tsx) cannot.
const WORKER = `
const { workerData } = require('node:worker_threads');
const inspector = require('node:inspector');
const fs = require('node:fs');
const beat = new Int32Array(workerData.sab);
// A full pipe or socket (EAGAIN: its reader fell behind) loses the line, not the watchdog.
const log = (level, msg, fields) => { try { fs.writeSync(2, JSON.stringify({ t: new Date().toISOString(), level, component: workerData.component, msg, ...fields }) + '\\n'); } catch {} };
const read = (f) => { try { return fs.readFileSync(f, 'utf8').trim(); } catch { return ''; } };
let last = Atomics.load(beat, 0), since = Date.now(), reported = false;
setInterval(() => {
  const now = Atomics.load(beat, 0);
  if (now !== last) {
    if (reported) log('warn', 'event loop running again', { stalledMs: Date.now() - since });
    last = now; since = Date.now(); reported = false;
    return;
  }
  if (reported || Date.now() - since < workerData.stallMs) return;
  reported = true;
  const stalledMs = Date.now() - since;
  // The main thread's system call and kernel wait channel (Linux): where a blocked thread waits.
  const syscall = read('/proc/' + process.pid + '/task/' + process.pid + '/syscall').split(' ')[0];
  const wchan = read('/proc/' + process.pid + '/task/' + process.pid + '/wchan');
  // A session for this stall only: one left connected would hold the process at exit.
  const session = new inspector.Session();
  session.connectToMainThread();
  const urls = new Map();
  session.on('Debugger.scriptParsed', ({ params }) => urls.set(params.scriptId, params.url));
  let done = false;
  const finish = () => session.post('Debugger.disable', () => session.disconnect());
  const notJs = setTimeout(() => {
    done = true;
    log('error', 'event loop stalled, not in JavaScript', { stalledMs, syscall, wchan });
    finish();
  }, 1000);
  session.once('Debugger.paused', ({ params }) => {
    const stack = params.callFrames.slice(0, 12).map((f) => (f.functionName || '(anonymous)') + ' ' + (urls.get(f.location.scriptId) || '?') + ':' + (f.location.lineNumber + 1) + ':' + (f.location.columnNumber + 1));
    session.post('Debugger.resume', finish);
    if (done) return;
    clearTimeout(notJs);
    log('error', 'event loop stalled in JavaScript', { stalledMs, stack });
  });
  session.post('Debugger.enable', () => session.post('Debugger.pause', () => {}));
}, 250);
`;

/** Starts the watchdog for this process (once); returns a function that stops it. */
export function watchStalls(options: StallWatchOptions): () => Promise<void> {
  const sab = new SharedArrayBuffer(4);
  const beat = new Int32Array(sab);
  const timer = setInterval(() => Atomics.add(beat, 0, 1), BEAT_MS);
  timer.unref();
  const worker = new Worker(WORKER, { eval: true, workerData: { sab, component: options.component, stallMs: options.stallMs ?? 5000 } });
  worker.unref();
  // A diagnostic: should its thread fail, the role goes on without it.
  worker.on('error', () => {});
  return async () => {
    clearInterval(timer);
    await worker.terminate();
  };
}
