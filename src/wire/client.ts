/**
 * Client helpers: channels with the project's limits, unary calls with a deadline and an
 * AbortSignal, and streams as async iterables.
 */
import * as grpc from '@grpc/grpc-js';
import { channelOptions } from './server.js';
import { clientCredentials } from './tls.js';
import { signedMetadata, type Signer } from './auth.js';

/** Per-call options: every outbound call has a deadline. */
export interface CallOptions {
  /** Milliseconds until the call fails with DEADLINE_EXCEEDED. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** The hotkey that signs each client's calls. */
const signers = new WeakMap<grpc.Client, Signer>();

/**
 * Makes a client of `Ctor` for `address` with the project's channel options; with `signer`,
 * every call it makes through these helpers is signed (auth.ts).
 */
export function makeClient<C extends grpc.Client>(
  Ctor: new (address: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => C,
  address: string,
  credentials = clientCredentials(),
  signer?: Signer | null,
): C {
  const client = new Ctor(address, credentials, channelOptions());
  if (signer) signers.set(client, signer);
  return client;
}

/** The metadata of a call: signed when the client has a signer. */
function metadataFor(client: grpc.Client, method: string, request: unknown, stream = false): grpc.Metadata {
  const signer = signers.get(client);
  if (!signer) return new grpc.Metadata();
  const def = (client.constructor as unknown as { service: grpc.ServiceDefinition }).service[method]!;
  return signedMetadata(signer, def.path, stream ? null : def.requestSerialize(request));
}

type AnyClient = Record<string, (...args: never[]) => unknown>;

function deadline(ms: number): Date {
  return new Date(Date.now() + ms);
}

function linkSignal(call: { cancel(): void }, signal?: AbortSignal): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    call.cancel();
    return () => {};
  }
  const onAbort = () => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/** Calls a unary method and resolves with its response. */
export function callUnary<Res>(client: grpc.Client, method: string, request: unknown, options: CallOptions): Promise<Res> {
  const fn = (client as unknown as AnyClient)[method] as unknown as (
    req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void,
  ) => grpc.ClientUnaryCall;
  return new Promise<Res>((resolve, reject) => {
    let unlink = () => {};
    const call = fn.call(client, request, metadataFor(client, method, request), { deadline: deadline(options.timeoutMs) }, (err, res) => {
      unlink();
      if (err) reject(err);
      else resolve(res);
    });
    unlink = linkSignal(call, options.signal);
  });
}

/** Opens a server stream; iterate the result for its messages. */
export function callServerStream<Res>(client: grpc.Client, method: string, request: unknown, options: CallOptions): grpc.ClientReadableStream<Res> & AsyncIterable<Res> {
  const fn = (client as unknown as AnyClient)[method] as unknown as (
    req: unknown, md: grpc.Metadata, opts: grpc.CallOptions,
  ) => grpc.ClientReadableStream<Res>;
  const call = fn.call(client, request, metadataFor(client, method, request), { deadline: deadline(options.timeoutMs) });
  const unlink = linkSignal(call, options.signal);
  call.once('close', unlink);
  return call as grpc.ClientReadableStream<Res> & AsyncIterable<Res>;
}

/**
 * Opens a client stream, writes every message of `messages` (awaiting back-pressure) and
 * resolves with the server's response.
 */
export async function callClientStream<Req, Res>(
  client: grpc.Client, method: string, messages: Iterable<Req> | AsyncIterable<Req>, options: CallOptions,
): Promise<Res> {
  const fn = (client as unknown as AnyClient)[method] as unknown as (
    md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void,
  ) => grpc.ClientWritableStream<Req>;
  let unlink = () => {};
  let call!: grpc.ClientWritableStream<Req>;
  const result = new Promise<Res>((resolve, reject) => {
    call = fn.call(client, metadataFor(client, method, null, true), { deadline: deadline(options.timeoutMs) }, (err, res) => {
      unlink();
      if (err) reject(err);
      else resolve(res);
    });
  });
  unlink = linkSignal(call, options.signal);
  let failed = false;
  result.catch(() => { failed = true; });
  for await (const msg of messages) {
    if (failed) break;
    if (!call.write(msg)) {
      await new Promise<void>((resolve) => {
        const done = () => { call.off('drain', done); call.off('close', done); resolve(); };
        call.on('drain', done);
        call.on('close', done);
      });
    }
  }
  call.end();
  return result;
}
