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

const CALL_CANCELLED = new Error('the call was cancelled (client gone, deadline passed)');

/** An AbortSignal that fires when the call is cancelled (client gone, deadline passed). */
export function callSignal(call: { cancelled: boolean; once(event: 'cancelled', fn: () => void): unknown }): AbortSignal {
  const ac = new AbortController();
  // One reason for all: a default one is a DOMException with a stack, made at every call's end.
  if (call.cancelled) ac.abort(CALL_CANCELLED);
  else call.once('cancelled', () => ac.abort(CALL_CANCELLED));
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
    const send = (msg: Res) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        if (call.write(msg)) resolve();
        else call.once('drain', resolve);
      });
    Promise.resolve()
      .then(() => fn(call.request, send, signal))
      .then(() => call.end(), (err) => {
        // grpc-js turns an 'error' event into the call's status and ends it.
        if (!signal.aborted) call.emit('error', toServiceError(err, log, method));
      });
  };
}

/** Wraps an async client-streaming handler: `fn` consumes the request stream. */
export function clientStream<Req, Res>(
  log: Logger,
  method: string,
  fn: (messages: AsyncIterable<Req>, signal: AbortSignal, call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>,
): grpc.handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    const signal = callSignal(call);
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
