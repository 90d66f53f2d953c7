/**
 * gRPC servers and handlers with one policy: explicit message limits, a raised HTTP/2 window,
 * errors mapped by `status.ts`, and an AbortSignal for every call that fires when the client
 * cancels or the deadline passes.
 */
import * as grpc from '@grpc/grpc-js';
import type { Http2Server, Http2Session } from 'node:http2';
import net from 'node:net';
import { ConfigError } from '../errors.js';
import { MAX_MESSAGE_BYTES } from './blob.js';
import { toServiceError } from './status.js';
import type { Logger } from '../util/index.js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import { identityService, packageDefinition, type IdentityHandlers } from './proto.js';
import { StreamGuard, DEFAULT_STREAM_LIMITS, type StreamLimits } from './stream-guard.js';

/**
 * HTTP/2 flow-control window the servers advertise, per stream and per connection. grpc-js
 * servers keep Node's 64 KB default, which caps one upload at window / RTT; 16 MiB measured
 * 440 -> 1,000-1,300 MB/s on loopback (MEASURED.md).
 */
export const SERVER_WINDOW_BYTES = 16 << 20;

/** Options of {@link createGrpcServer}. */
export interface GrpcServerOptions {
  /** HTTP/2 window in bytes; default {@link SERVER_WINDOW_BYTES}. */
  windowBytes?: number;
  /** Largest message received or sent; default {@link MAX_MESSAGE_BYTES}. */
  maxMessageBytes?: number;
  /** Most concurrent streams (calls) one connection may open; default {@link MAX_STREAMS_PER_CONNECTION}. */
  maxStreamsPerConnection?: number;
  /** Bounds on incomplete messages (stream-guard.ts); default {@link DEFAULT_STREAM_LIMITS}. */
  streamLimits?: StreamLimits;
  /** Where stream resets are logged. */
  log?: Logger;
}

/**
 * Most concurrent calls on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; a client
 * queues the calls beyond it). A node makes a few at a time (a long poll, a heartbeat, a SecAgg
 * wait, an upload); each stream may hold one incomplete message, which the guard also bounds.
 */
export const MAX_STREAMS_PER_CONNECTION = 100;

/** Channel options shared by every client and server of the project. */
export function channelOptions(maxMessageBytes = MAX_MESSAGE_BYTES): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    'grpc-node.flow_control_window': SERVER_WINDOW_BYTES,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_permit_without_calls': 1,
  };
}

/** A server whose window is raised once it listens. */
export interface GrpcServer {
  server: grpc.Server;
  /** Binds `host:port` (port 0 picks one) and returns the bound address. */
  listen(address: string, credentials?: grpc.ServerCredentials): Promise<string>;
  /** Stops accepting calls, waits up to `graceMs` for running ones, then cancels the rest. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Creates a grpc-js server that advertises a large HTTP/2 window. grpc-js has no server option
 * for it, so this sets `initialWindowSize` in the settings grpc-js hands to
 * `http2.createServer` and raises each session's connection window as it opens.
 */
export function createGrpcServer(options: GrpcServerOptions = {}): GrpcServer {
  const windowBytes = options.windowBytes ?? SERVER_WINDOW_BYTES;
  const server = new grpc.Server({ ...channelOptions(options.maxMessageBytes), 'grpc.max_concurrent_streams': options.maxStreamsPerConnection ?? MAX_STREAMS_PER_CONNECTION });
  const guard = new StreamGuard(options.streamLimits ?? DEFAULT_STREAM_LIMITS, options.log);
  // Internal of grpc-js 1.14 (server.ts: commonServerOptions is passed to http2.createServer).
  const internal = server as unknown as {
    commonServerOptions: { settings?: Record<string, number> };
    http2Servers: Map<Http2Server, unknown>;
  };
  internal.commonServerOptions.settings = { ...internal.commonServerOptions.settings, initialWindowSize: windowBytes };
  const raised = new WeakSet<Http2Server>();
  return {
    server,
    async listen(address, credentials = grpc.ServerCredentials.createInsecure()) {
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(address, credentials, (err, p) => (err ? reject(err) : resolve(p))),
      );
      for (const h2 of internal.http2Servers?.keys() ?? []) {
        if (raised.has(h2)) continue;
        raised.add(h2);
        h2.on('session', (session: Http2Session) => {
          guard.attach(session);
          session.once('connect', () => session.setLocalWindowSize(windowBytes));
          if (!session.connecting) session.setLocalWindowSize(windowBytes);
        });
      }
      const host = address.slice(0, address.lastIndexOf(':'));
      return `${host}:${port}`;
    },
    close(graceMs = 2_000) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** An AbortSignal that fires when the call is cancelled (client gone, deadline passed). */
export function callSignal(call: { cancelled: boolean; once(event: 'cancelled', fn: () => void): unknown }): AbortSignal {
  const ac = new AbortController();
  if (call.cancelled) ac.abort();
  else call.once('cancelled', () => ac.abort());
  return ac.signal;
}

/** Wraps an async unary handler with the error policy. */
export function unary<Req, Res>(
  log: Logger,
  method: string,
  fn: (req: Req, signal: AbortSignal, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request, callSignal(call), call))
      .then((res) => callback(null, res), (err) => callback(toServiceError(err, log, method)));
  };
}

/** Wraps an async server-streaming handler: `fn` writes with `send` (awaiting back-pressure). */
export function serverStream<Req, Res>(
  log: Logger,
  method: string,
  fn: (req: Req, send: (msg: Res) => Promise<void>, signal: AbortSignal) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    const signal = callSignal(call);
    // A stream has one message written and not yet taken by HTTP/2 at a time, and that message
    // holds one of the places all streams share until it is taken (or for SEND_HOLD_MS at most,
    // so that peers that stop reading cannot keep the places): 1,000 trainers fetching a 40 MB
    // model at once hold about 64 messages, not 40 GB of serialized chunks.
    const send = async (msg: Res) => {
      if (!(await SENDS.take(signal))) return;
      let held = true;
      const give = () => {
        if (!held) return;
        held = false;
        clearTimeout(timer);
        SENDS.give();
      };
      const timer = setTimeout(give, SEND_HOLD_MS);
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        signal.addEventListener('abort', done, { once: true });
        call.write(msg, done);
      }).finally(give);
    };
    Promise.resolve()
      .then(() => fn(call.request, send, signal))
      .then(() => call.end(), (err) => {
        // grpc-js turns an 'error' event into the call's status and ends it.
        if (!signal.aborted) call.emit('error', toServiceError(err, log, method));
      });
  };
}

/** Messages all server streams of a process may have written and not yet handed to HTTP/2 (chunks are 1 MiB). */
export const MAX_SENDS_IN_FLIGHT = 64;
/** Longest a message holds its place while its stream's peer does not read. */
const SEND_HOLD_MS = 1000;

/** A counting semaphore: `take` waits (FIFO) for a place, `give` returns one. */
class Places {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(count: number) {
    this.free = count;
  }

  /** True once a place is taken; false when `signal` aborted first (no place is held then). */
  async take(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return false;
    if (this.free > 0 && this.waiting.length === 0) {
      this.free--;
      return true;
    }
    return new Promise<boolean>((resolve) => {
      const go = () => {
        signal.removeEventListener('abort', cancel);
        resolve(true);
      };
      const cancel = () => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(false);
      };
      this.waiting.push(go);
      signal.addEventListener('abort', cancel, { once: true });
    });
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

const SENDS = new Places(MAX_SENDS_IN_FLIGHT);

/** Wraps an async client-streaming handler: `fn` consumes the request stream. */
export function clientStream<Req, Res>(
  log: Logger,
  method: string,
  fn: (messages: AsyncIterable<Req>, signal: AbortSignal, call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>,
): grpc.handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    const signal = callSignal(call);
    // grpc-js pauses a call's HTTP/2 stream once a message is whole, until its Readable asks for
    // more; at the Readable's default mark it asks for 16 (16 MiB of chunks a call, 1.6 GB for
    // 100 uploads while the loop is busy). One message read ahead is enough.
    const readable = (call as unknown as { _readableState?: { highWaterMark: number } })._readableState;
    if (readable) readable.highWaterMark = 1;
    Promise.resolve()
      .then(() => fn(call as AsyncIterable<Req>, signal, call))
      .then((res) => callback(null, res), (err) => {
        // Drain what the client still sends, so its write() resolves and it reads our status.
        call.resume();
        // A call the client cancelled (or the server reset) has no one to tell.
        if (signal.aborted) callback({ code: grpc.status.CANCELLED, details: `${method}: cancelled` });
        else callback(toServiceError(err, log, method));
      });
  };
}

/**
 * Serves `actiquest.v1.Identity` on `server`: who this server is, for clients that sign their
 * requests for it (auth.ts). Unsigned by design: it tells nothing a client could not be told.
 */
export function serveIdentity(server: grpc.Server, log: Logger, hotkey: string, role: 'coordinator' | 'dataset'): void {
  const handlers: IdentityHandlers = { Who: unary(log, 'Who', () => ({ hotkey, role })) };
  server.addService(identityService, handlers);
}

/** A server's `grpc.health.v1.Health` status: overall ('') and for each of its services. */
export interface Health {
  /** Sets the overall status (what a probe without a service name reads). */
  set(status: ServingStatus): void;
  /** Every service NOT_SERVING (shutting down). */
  stopping(): void;
}

/**
 * Serves the standard gRPC health service (`grpc-health-check`) and server reflection
 * (`@grpc/reflection`, v1 and v1alpha) for `services` on `server`, so that Kubernetes probes,
 * gRPC-aware load balancers and grpcurl work. Each named service is SERVING once added; the
 * overall status starts NOT_SERVING and follows the role's readiness through the handle.
 */
export function serveHealthAndReflection(server: grpc.Server, services: readonly string[]): Health {
  const names = [...services, 'actiquest.v1.Identity'];
  const health = new HealthImplementation({ '': 'NOT_SERVING', ...Object.fromEntries(names.map((n) => [n, 'SERVING' as const])) });
  health.addToServer(server);
  new ReflectionService(packageDefinition, { services: [...names, 'grpc.health.v1.Health'] }).addToServer(server);
  return {
    set: (status) => health.setStatus('', status),
    stopping: () => {
      for (const n of ['', ...names]) health.setStatus(n, 'NOT_SERVING');
    },
  };
}

/**
 * Throws a {@link ConfigError} naming `--<flag>` when `host:port` cannot be listened on (in use,
 * not permitted, no such address); port 0 always can. Roles check before they open anything,
 * so a busy port leaves no files behind.
 */
export async function ensureCanListen(flag: string, address: string): Promise<void> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  if (at < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(flag, 'HOST:PORT', JSON.stringify(address));
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'in use by another process' : err.code === 'EACCES' ? 'not permitted (ports below 1024 need privileges)'
        : err.code === 'EADDRNOTAVAIL' ? 'not an address of this machine' : err.message;
      reject(new ConfigError(flag, 'an address this process can listen on', `${address}: ${why}`));
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
