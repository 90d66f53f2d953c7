/**
 * Client helpers: channels with the project's limits, unary calls with a deadline and an
 * AbortSignal, and streams as async iterables. A client with a signer signs every call for the
 * server's hotkey: the one it was given, else the one the server names (`Identity/Who`, asked
 * once per client).
 */
import * as grpc from '@grpc/grpc-js';
import { channelOptions } from './server.js';
import { clientCredentials } from './tls.js';
import { signedMetadata, type Signer } from './auth.js';
import { IdentityClient } from './proto.js';
import { hasStatus } from './status.js';
import { BlobAssembler, type BlobLimits } from './blob.js';
import type { BlobChunk, BlobHeader } from './proto.js';
import { InvalidFieldError } from '../errors.js';
import { sleep } from '../util/index.js';

/** Per-call options: every outbound call has a deadline. */
export interface CallOptions {
  /** Milliseconds until the call fails with DEADLINE_EXCEEDED. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** How each client signs: its hotkey, and the server's (given, or learned once). */
interface Signing { signer: Signer | null; audience: string | null; pinned: boolean; learned: Promise<string> | null; address: string; credentials: grpc.ChannelCredentials }
const signing = new WeakMap<grpc.Client, Signing>();

/**
 * Makes a client of `Ctor` for `address` with the project's channel options; with `signer`,
 * every call it makes through these helpers is signed (auth.ts) for the server whose hotkey is
 * `audience`, or, without one, for the hotkey the server names when asked.
 */
export function makeClient<C extends grpc.Client>(
  Ctor: new (address: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => C,
  address: string,
  credentials = clientCredentials(),
  signer?: Signer | null,
  audience?: string | null,
  options: grpc.ChannelOptions = {},
): C {
  const client = new Ctor(address, credentials, { ...channelOptions(), ...options });
  signing.set(client, { signer: signer ?? null, audience: audience ?? null, pinned: audience !== undefined && audience !== null, learned: null, address, credentials });
  return client;
}

/** The hotkey a client signs for, when given or already learned (tests that sign by hand). */
export function audienceOf(client: grpc.Client): string | null {
  return signing.get(client)?.audience ?? null;
}

/** Asks the server at `address` who it is. */
export async function whoIs(address: string, options: CallOptions, credentials = clientCredentials()): Promise<{ hotkey: string; role: string }> {
  const client = makeClient(IdentityClient, address, credentials);
  try {
    return await callUnary(client, 'Who', {}, options);
  } finally {
    client.close();
  }
}

/** The metadata of a call, when it can be made at once: unsigned, or signed for a server's hotkey already known. */
function metadataNow(client: grpc.Client, method: string, request: unknown, stream: boolean): grpc.Metadata | null {
  const s = signing.get(client);
  if (!s?.signer) return new grpc.Metadata();
  if (s.audience === null) return null;
  const def = (client.constructor as unknown as { service: grpc.ServiceDefinition }).service[method]!;
  return signedMetadata(s.signer, def.path, stream ? null : def.requestSerialize(request), Date.now(), { audience: s.audience });
}

/** The metadata of a call: signed when the client has a signer, for the server's hotkey (asked for first when unknown). */
async function metadataFor(client: grpc.Client, method: string, request: unknown, options: CallOptions, stream = false): Promise<grpc.Metadata> {
  const s = signing.get(client);
  if (s?.signer && s.audience === null) {
    // A server with no hotkey of its own names none: its requests are signed for no server.
    s.learned ??= whoIs(s.address, { timeoutMs: Math.min(options.timeoutMs, 30_000), signal: options.signal }, s.credentials).then((who) => who.hotkey);
    try {
      s.audience = await s.learned;
    } catch (err) {
      s.learned = null;
      throw err;
    }
  }
  return metadataNow(client, method, request, stream)!;
}

/**
 * A server that refuses the hotkey a client learned from it (it restarted with another key, say)
 * is asked again before the next call; a hotkey the client was given stays.
 */
function forgetRefusedAudience(client: grpc.Client, err: unknown): void {
  const s = signing.get(client);
  const e = err as grpc.ServiceError;
  if (s && !s.pinned && e?.code === grpc.status.UNAUTHENTICATED && typeof e.details === 'string' && e.details.startsWith('x-aq-audience:')) {
    s.audience = null;
    s.learned = null;
  }
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
  const at = deadline(options.timeoutMs);
  const start = (md: grpc.Metadata) => new Promise<Res>((resolve, reject) => {
    let unlink = () => {};
    const call = fn.call(client, request, md, { deadline: at }, (err, res) => {
      unlink();
      if (err) {
        forgetRefusedAudience(client, err);
        reject(err);
      } else resolve(res);
    });
    unlink = linkSignal(call, options.signal);
  });
  return metadataFor(client, method, request, options).then(start);
}

/**
 * Whether `err` says a call got no answer rather than a refusal: its deadline passed, or its
 * connection dropped. A dropped connection reads as UNAVAILABLE, or as CANCELLED ("Call
 * cancelled") when Node reports the connection's streams as reset with CANCEL before grpc-js
 * has seen the connection go; a call its own `signal` cancelled is not unanswered.
 */
export function unanswered(err: unknown, signal?: AbortSignal): boolean {
  if (hasStatus(err, grpc.status.DEADLINE_EXCEEDED) || hasStatus(err, grpc.status.UNAVAILABLE)) return true;
  return hasStatus(err, grpc.status.CANCELLED) && !signal?.aborted;
}

/**
 * Calls `call` again while it fails for want of an answer (its deadline passed, the connection
 * dropped: a busy or restarting server), waiting 0.25 s doubling to 4 s between tries, until
 * `signal` (a task's deadline, say) ends it, or `attempts` calls were made. Any other error is
 * the call's answer. Only for calls the server answers alike when it gets them twice.
 */
export async function untilAnswered<T>(call: () => Promise<T>, signal: AbortSignal, attempts = Infinity): Promise<T> {
  for (let waitMs = 250, attempt = 1; ; waitMs = Math.min(2 * waitMs, 4_000), attempt++) {
    try {
      return await call();
    } catch (err) {
      if (signal.aborted || attempt >= attempts || !unanswered(err, signal)) throw err;
    }
    await sleep(waitMs, signal);
  }
}

/**
 * Receives a blob that a server streams as a header and then chunks, over a stream that may be
 * cut off: while the answer stops coming ({@link untilAnswered}: a deadline passed, the
 * connection dropped), it is asked for again from the first chunk not yet received, and the
 * bytes already in are kept, for at most `attempts` streams. Each new stream's header must
 * name the same blob.
 */
export async function receiveResumable(
  open: (fromChunk: number) => AsyncIterable<{ part?: string; header?: BlobHeader | null; chunk?: BlobChunk | null }>,
  limits: BlobLimits, signal: AbortSignal, attempts = Infinity,
): Promise<Buffer> {
  let asm: BlobAssembler | null = null;
  return untilAnswered(async () => {
    let first = true;
    for await (const msg of open(asm?.chunksReceived ?? 0)) {
      if (msg.part === 'header' && first) {
        if (!asm) asm = new BlobAssembler(msg.header, limits);
        else if (!asm.sameBlob(msg.header)) throw new InvalidFieldError('header', 'the blob the download began (same length, chunks and sha256)', 'another blob');
      } else if (msg.part !== 'chunk' || !msg.chunk) {
        throw new InvalidFieldError('stream', first ? 'a header first' : 'a chunk', msg.part ?? 'an empty message');
      } else if (first || !asm) {
        throw new InvalidFieldError('stream', 'a header first', 'a chunk');
      } else {
        asm.push(msg.chunk);
      }
      first = false;
    }
    if (!asm) throw new InvalidFieldError('stream', 'a header and chunks', 'an empty stream');
    return asm.finish();
  }, signal, attempts);
}

/** A server stream's messages, and a way to stop it. */
export type ServerStream<T> = AsyncIterable<T> & { cancel(): void };

/** Opens a server stream; iterate the result for its messages. */
export function callServerStream<C extends grpc.Client, M extends ServerStreamMethod<C>>(
  client: C, method: M, request: RequestOf<C, M>, options: CallOptions,
): ServerStream<ResponseOf<C, M>> {
  type Res = ResponseOf<C, M>;
  const fn = (client as unknown as AnyClient)[method] as unknown as (
    req: unknown, md: grpc.Metadata, opts: grpc.CallOptions,
  ) => grpc.ClientReadableStream<Res>;
  const at = deadline(options.timeoutMs);
  const open = (md: grpc.Metadata) => {
    const call = fn.call(client, request, md, { deadline: at });
    const unlink = linkSignal(call, options.signal);
    call.once('close', unlink);
    return call;
  };
  const now = metadataNow(client, method, request, false);
  if (now) return open(now);
  let call: grpc.ClientReadableStream<Res> | null = null;
  let cancelled = false;
  const messages = (async function* () {
    const md = await metadataFor(client, method, request, options);
    if (cancelled) throw Object.assign(new Error('Cancelled on client'), { code: grpc.status.CANCELLED });
    call = open(md);
    yield* call as AsyncIterable<Res>;
  })();
  return Object.assign(messages, { cancel() { cancelled = true; call?.cancel(); } });
}

/** Options of a client stream. */
export interface ClientStreamOptions extends CallOptions {
  /**
   * After the first message, wait for the server's response headers (its admission) before
   * writing the rest; a call refused meanwhile writes nothing more. For servers that send them
   * early (the coordinator's SubmitUpdate, RegisterTrainerResponse.upload_admission).
   */
  awaitAdmission?: boolean;
}

/**
 * Opens a client stream, writes every message of `messages` (awaiting back-pressure) and
 * resolves with the server's response.
 */
export async function callClientStream<C extends grpc.Client, M extends ClientStreamMethod<C>>(
  client: C, method: M, messages: Iterable<RequestOf<C, M>> | AsyncIterable<RequestOf<C, M>>, options: ClientStreamOptions,
): Promise<ResponseOf<C, M>> {
  type Req = RequestOf<C, M>;
  type Res = ResponseOf<C, M>;
  const fn = (client as unknown as AnyClient)[method] as unknown as (
    md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void,
  ) => grpc.ClientWritableStream<Req>;
  let unlink = () => {};
  let call!: grpc.ClientWritableStream<Req>;
  const at = deadline(options.timeoutMs);
  const md = await metadataFor(client, method, null, options, true);
  const result = new Promise<Res>((resolve, reject) => {
    call = fn.call(client, md, { deadline: at }, (err, res) => {
      unlink();
      if (err) {
        forgetRefusedAudience(client, err);
        reject(err);
      } else resolve(res);
    });
  });
  unlink = linkSignal(call, options.signal);
  // Answered (a refusal, or an upload already taken) or failed: nothing more to write.
  let ended = false;
  result.then(() => { ended = true; }, () => { ended = true; });
  // Settles on the response headers, or on the call's end (refused, failed) when none came first.
  let admitted = options.awaitAdmission ? new Promise<void>((resolve) => {
    call.once('metadata', () => resolve());
    result.then(() => resolve(), () => resolve());
  }) : null;
  for await (const msg of messages) {
    if (ended) break;
    if (!call.write(msg)) {
      await new Promise<void>((resolve) => {
        const done = () => { call.off('drain', done); call.off('close', done); resolve(); };
        call.on('drain', done);
        call.on('close', done);
      });
    }
    if (admitted) {
      await admitted;
      admitted = null;
      if (ended) break;
    }
  }
  call.end();
  return result;
}
