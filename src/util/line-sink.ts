/**
 * Lines to stdout or stderr in bounded memory. When a role's output is a pipe or a socket and
 * its reader stops reading (a stuck log shipper, a parent that no longer drains it), Node keeps
 * every line written meanwhile in the process's memory, without limit. Here at most
 * {@link MAX_PENDING} bytes wait; lines beyond are dropped and counted, and once the reader has
 * caught up one line says how many. Terminals and files are written as Node writes them.
 *
 * A pipe or socket is written in non-blocking mode, set again before every line. The mode
 * belongs to the open file, which a child process that inherits the descriptor shares: libuv
 * puts a child's stdio in blocking mode as it starts it, and so turns the parent's writes
 * blocking too. esbuild's service, which tsx starts to compile a module missing from its cache,
 * is such a child (its stderr is inherited), in any thread, at any time. From then on a reader
 * that fell behind held the whole process in `write(2)`: its event loop stopped, and no call,
 * not even a new connection's handshake, was answered until the reader read again.
 */
import fs from 'node:fs';

/** Bytes of output that may wait for a slow reader; lines beyond are dropped. */
export const MAX_PENDING = 1 << 20;

/** Writes whole lines (each ends with a newline). */
export type LineWriter = (line: string) => void;

const sinks = new Map<number, LineWriter>();

/** The process's writer of lines to `fd` (1: stdout, 2: stderr). */
export function lineSink(fd: 1 | 2): LineWriter {
  let sink = sinks.get(fd);
  if (!sink) {
    sink = open(fd);
    sinks.set(fd, sink);
  }
  return sink;
}

function open(fd: 1 | 2): LineWriter {
  const stream = fd === 1 ? process.stdout : process.stderr;
  let bounded = !stream.isTTY;
  try {
    if (fs.fstatSync(fd).isFile()) bounded = false;
  } catch {
    // not a descriptor we can look at: bound it
  }
  if (!bounded) return (line) => void stream.write(line);
  // libuv's stream handle: setBlocking(false) sets O_NONBLOCK on the descriptor (one ioctl).
  const handle = (stream as unknown as { _handle?: { setBlocking?: (blocking: boolean) => number } })._handle;
  const nonBlocking = () => void handle?.setBlocking?.(false);
  let dropped = 0;
  stream.on('drain', () => {
    if (dropped === 0) return;
    nonBlocking();
    stream.write(`${JSON.stringify({ t: new Date().toISOString(), level: 'warn', component: 'output', msg: 'lines dropped: the reader of this output fell behind', dropped })}\n`);
    dropped = 0;
  });
  // A reader that went away (EPIPE) is not an error of the process.
  stream.on('error', () => {});
  return (line) => {
    if (stream.writableLength + line.length > MAX_PENDING) {
      dropped++;
      return;
    }
    nonBlocking();
    stream.write(line);
  };
}
