/**
 * Typed calls over a real loopback channel: the request and the response carry the types the
 * .proto files generate, and a misspelt method or a field of the wrong type does not compile
 * (`@ts-expect-error` below: `npm test` type-checks first and fails if one of them compiled).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createGrpcServer, type GrpcServer, unary } from './server.js';
import { DatasetClient, datasetService, type DatasetHandlers, type DatasetStub } from './proto.js';
import { callServerStream, callUnary, makeClient } from './client.js';
import { createLogger } from '../util/index.js';

let g: GrpcServer | null = null;
afterEach(async () => g?.close());

/** Calls the compiler must refuse; never run. */
export function refusedAtCompileTime(client: DatasetStub): void {
  // @ts-expect-error: no such method on the Dataset service
  void callUnary(client, 'GetManifests', {}, { timeoutMs: 1 });
  // @ts-expect-error: StreamShard is server-streaming, not unary
  void callUnary(client, 'StreamShard', { shardId: 's' }, { timeoutMs: 1 });
  // @ts-expect-error: shard_id is a string
  callServerStream(client, 'StreamShard', { shardId: 5 }, { timeoutMs: 1 }).cancel();
}

describe('typed calls', () => {
  it('send and receive the generated message shapes', async () => {
    g = createGrpcServer();
    const log = createLogger('test', { level: 'error' });
    const handlers: Pick<DatasetHandlers, 'GetManifest'> = {
      GetManifest: unary(log, 'GetManifest', () => ({ nodeId: 'site-a', task: 'pose', shards: [{ shardId: 's0', numSamples: 32, sha256: 'ab', sizeBytes: 4096 }] })),
    };
    g.server.addService(datasetService, handlers);
    const client = makeClient(DatasetClient, await g.listen('127.0.0.1:0'));
    try {
      const manifest = await callUnary(client, 'GetManifest', {}, { timeoutMs: 5000 });
      // Every field present, 64-bit integers as numbers.
      expect(manifest).toEqual({ nodeId: 'site-a', task: 'pose', shards: [{ shardId: 's0', numSamples: 32, sha256: 'ab', sizeBytes: 4096 }] });
    } finally {
      client.close();
    }
  });
});
