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

/*
 * The methods of a generated client (`generated/`, proto-loader-gen-types), by kind, with their
 * request and response types, read off each method's shortest overload. Calls below name a method
 * of the client's service, and the compiler checks the name, the request and the response.
 */
type Returns<F> = F extends (...args: never[]) => infer R ? R : never;
type UnaryOf<F> = Returns<F> extends grpc.ClientWritableStream<never> | grpc.ClientReadableStream<never> ? never
  : F extends (argument: infer Req, callback: grpc.requestCallback<infer Res>) => grpc.ClientUnaryCall ? { req: Req; res: Res } : never;
type ServerStreamOf<F> = F extends (argument: infer Req, options?: grpc.CallOptions) => grpc.ClientReadableStream<infer Res> ? { req: Req; res: Res } : never;
type ClientStreamOf<F> = F extends (callback: grpc.requestCallback<infer Res>) => grpc.ClientWritableStream<infer Req> ? { req: Req; res: Res } : never;
/** Names of the client's unary methods. */
export type UnaryMethod<C> = { [K in keyof C & string]: [UnaryOf<C[K]>] extends [never] ? never : K }[keyof C & string];
/** Names of the client's server-streaming methods. */
export type ServerStreamMethod<C> = { [K in keyof C & string]: [ServerStreamOf<C[K]>] extends [never] ? never : K }[keyof C & string];
/** Names of the client's client-streaming methods. */
export type ClientStreamMethod<C> = { [K in keyof C & string]: [ClientStreamOf<C[K]>] extends [never] ? never : K }[keyof C & string];
/** The request a method takes (every field optional, as proto3 sends it). */
export type RequestOf<C, M extends keyof C> = (UnaryOf<C[M]> | ServerStreamOf<C[M]> | ClientStreamOf<C[M]>)['req'];
/** The response a method gives (every field present, defaults filled). */
export type ResponseOf<C, M extends keyof C> = (UnaryOf<C[M]> | ServerStreamOf<C[M]> | ClientStreamOf<C[M]>)['res'];

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
export function callUnary<C extends grpc.Client, M extends UnaryMethod<C>>(client: C, method: M, request: RequestOf<C, M>, options: CallOptions): Promise<ResponseOf<C, M>> {
  type Res = ResponseOf<C, M>;
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
export function callServerStream<C extends grpc.Client, M extends ServerStreamMethod<C>>(
  client: C, method: M, request: RequestOf<C, M>, options: CallOptions,
): grpc.ClientReadableStream<ResponseOf<C, M>> & AsyncIterable<ResponseOf<C, M>> {
  type Res = ResponseOf<C, M>;
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
export async function callClientStream<C extends grpc.Client, M extends ClientStreamMethod<C>>(
  client: C, method: M, messages: Iterable<RequestOf<C, M>> | AsyncIterable<RequestOf<C, M>>, options: CallOptions,
): Promise<ResponseOf<C, M>> {
  type Req = RequestOf<C, M>;
  type Res = ResponseOf<C, M>;
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
