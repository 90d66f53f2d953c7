/**
 * Lines to stdout or stderr in bounded memory. When a role's output is a pipe or a socket and
 * its reader stops reading (a stuck log shipper, a parent that no longer drains it), Node keeps
 * every line written meanwhile in the process's memory, without limit. Here at most
 * {@link MAX_PENDING} bytes wait; lines beyond are dropped and counted, and once the reader has
 * caught up one line says how many. Terminals and files are written as Node writes them.
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
  let dropped = 0;
  stream.on('drain', () => {
    if (dropped === 0) return;
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
    stream.write(line);
  };
}
