/**
 * Helpers for tests of signed requests: dev hotkeys, and calls with hand-made metadata (to send
 * what a well-behaved client never would: stale, replayed, tampered or foreign signatures).
 */
import * as grpc from '@grpc/grpc-js';
import { audienceOf, signedMetadata, type Signer, type SignOptions, signLease, type ShardLease } from '../src/wire/index.js';
import { loadSigner } from '../src/chain/index.js';

/** The signer of a dev secret URI (//Name). */
export const dev = (name: string): Promise<Signer> => loadSigner({ uri: `//${name}` });

type Method = grpc.MethodDefinition<unknown, unknown>;

function method(client: grpc.Client, name: string): Method {
  return (client.constructor as unknown as { service: Record<string, Method> }).service[name]!;
}

/**
 * Metadata signing `body` (default: the request itself) for `name`, as of `now`: with the
 * signer's session key, as clients do, or with `session` false by the hotkey itself, or with
 * the session given; for the server `audience` (default: the hotkey the client was made for).
 */
export function sign(client: grpc.Client, name: string, signer: Signer, request: unknown, opts: { body?: unknown; now?: number } & SignOptions = {}): grpc.Metadata {
  const m = method(client, name);
  const audience = opts.audience ?? audienceOf(client) ?? undefined;
  return signedMetadata(signer, m.path, m.requestStream ? null : m.requestSerialize(opts.body ?? request), opts.now, { session: opts.session, ...(audience !== undefined ? { audience } : {}) });
}

/** A unary call with the given metadata; resolves with the response or the gRPC error. */
export function rawUnary(client: grpc.Client, name: string, request: unknown, md: grpc.Metadata): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!;
    fn.call(client, request, md, { deadline: new Date(Date.now() + 10_000) }, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
  });
}

/** A server-streaming call with the given metadata, drained; rejects with the gRPC error. */
export async function rawStream(client: grpc.Client, name: string, request: unknown, md: grpc.Metadata): Promise<number> {
  const fn = (client as unknown as Record<string, (...a: unknown[]) => AsyncIterable<unknown>>)[name]!;
  let n = 0;
  for await (const _ of fn.call(client, request, md, { deadline: new Date(Date.now() + 10_000) })) n++;
  return n;
}

/** A lease signed by `signer` (for forged ones: any key). */
export function lease(signer: Signer, datasetNodeId: string, trainer: string, shardIds: string[], expiresUnixMs = Date.now() + 60_000): ShardLease {
  return signLease(signer, { datasetNodeId, trainer, shardIds, expiresUnixMs });
}
