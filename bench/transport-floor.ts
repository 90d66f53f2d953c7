/**
 * What moving bytes costs before any of Actiquest's own work: Node's HTTP/2 alone (which grpc-js
 * is built on), with nothing framed, decoded, hashed or added. A server in a child process takes
 * uploads it throws away and serves downloads of one buffer written again and again, over
 * several connections from this process at once; its CPU seconds (user and system, the kernel's
 * socket copies included) per byte are the floor under what any coordinator built on it spends
 * on the same bytes. `bench:scale` measures it in the same run as the rounds it compares with it.
 *
 * Each direction is measured `tries` times and the least kept: other work on the machine only
 * adds to it.
 *
 * Run alone: `tsx bench/transport-floor.ts [--mib 512] [--connections 8] [--tries 3]` prints the figures.
 */
import http2 from 'node:http2';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** Bytes a write or an upload's piece carries: the size of a model chunk and of an update chunk. */
const PIECE = 1 << 20;
/** Flow-control windows as large as the coordinator's, so that windows are not what is measured. */
const WINDOW = 8 << 20;

export interface TransportFloor {
  /** The server's CPU nanoseconds per byte it received, and per byte it sent. */
  inNsPerByte: number;
  outNsPerByte: number;
  mib: number;
  connections: number;
  /** Passes made; the figures are the least of them. */
  tries: number;
}

/** Writes `bytes` bytes of `piece`, again and again, as fast as the stream takes them, then ends it. */
function send(stream: http2.Http2Stream, piece: Buffer, bytes: number): void {
  let left = bytes;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, piece.length);
      left -= n;
      if (!stream.write(n === piece.length ? piece : piece.subarray(0, n))) {
        stream.once('drain', pump);
        return;
      }
    }
    stream.end();
  };
  pump();
}

/** The child's side: an HTTP/2 server that prints its port, drops what comes and sends what is asked for. */
function serve(): void {
  const piece = Buffer.alloc(PIECE, 0x5a);
  const server = http2.createServer({ settings: { initialWindowSize: WINDOW } });
  server.on('session', (s) => s.setLocalWindowSize(WINDOW));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] === '/up') {
      stream.on('data', () => {});
      stream.on('end', () => {
        stream.respond({ ':status': 200 });
        stream.end();
      });
      return;
    }
    stream.respond({ ':status': 200 });
    send(stream, piece, Number(headers['x-bytes'] ?? 0));
  });
  server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (server.address() as { port: number }).port })));
  process.on('SIGTERM', () => process.exit(0));
}

/** A process's CPU seconds (user + system) from /proc, in clock ticks of 10 ms. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function upload(session: http2.ClientHttp2Session, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/up' });
    req.on('error', reject);
    req.on('end', () => resolve());
    req.resume();
    send(req, Buffer.alloc(PIECE, 0xa5), bytes);
  });
}

function download(session: http2.ClientHttp2Session, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': '/down', 'x-bytes': String(bytes) });
    let got = 0;
    req.on('data', (b: Buffer) => { got += b.length; });
    req.on('error', reject);
    req.on('end', () => (got === bytes ? resolve() : reject(new Error(`downloaded ${got} of ${bytes} bytes`))));
    req.end();
  });
}

/** Measures the floor: `mib` MiB uploaded to the child's server and as many downloaded from it, over `connections` connections, `tries` times. */
export async function measureTransportFloor(mib = 512, connections = 8, tries = 3): Promise<TransportFloor> {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the transport floor's server exited with ${code}`)));
      child.stdout.once('data', (b: Buffer) => resolve((JSON.parse(b.toString()) as { port: number }).port));
    });
    const sessions = await Promise.all(Array.from({ length: connections }, () => new Promise<http2.ClientHttp2Session>((resolve, reject) => {
      const s = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: WINDOW } });
      s.once('connect', () => {
        s.setLocalWindowSize(WINDOW);
        resolve(s);
      });
      s.once('error', reject);
    })));
    const each = Math.ceil((mib << 20) / connections);
    const total = each * connections;
    // One small exchange each way first, so that what is timed is bytes, not the first calls.
    await Promise.all(sessions.map((s) => Promise.all([upload(s, PIECE), download(s, PIECE)])));
    // The least of `tries` passes: what else the machine runs only adds to a pass.
    let inS = Infinity, outS = Infinity;
    for (let i = 0; i < tries; i++) {
      let before = cpuSeconds(child.pid!);
      await Promise.all(sessions.map((s) => upload(s, each)));
      inS = Math.min(inS, cpuSeconds(child.pid!) - before);
      before = cpuSeconds(child.pid!);
      await Promise.all(sessions.map((s) => download(s, each)));
      outS = Math.min(outS, cpuSeconds(child.pid!) - before);
    }
    for (const s of sessions) s.close();
    return { inNsPerByte: (inS * 1e9) / total, outNsPerByte: (outS * 1e9) / total, mib: total / 2 ** 20, connections, tries };
  } finally {
    child.kill('SIGTERM');
  }
}

if (process.argv.includes('--serve')) serve();
else if (process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url))) {
  const { values } = parseArgs({ options: { mib: { type: 'string', default: '512' }, connections: { type: 'string', default: '8' }, tries: { type: 'string', default: '3' } } });
  const f = await measureTransportFloor(Number(values.mib), Number(values.connections), Number(values.tries));
  console.log(`node:http2 alone, ${f.mib} MiB each way over ${f.connections} connections, the least of ${f.tries} passes: the server's CPU ${f.inNsPerByte.toFixed(2)} ns a byte received, ${f.outNsPerByte.toFixed(2)} ns a byte sent`);
}
