/**
 * Typed calls over a real loopback channel: the request and the response carry the types the
 * .proto files generate, and a misspelt method or a field of the wrong type does not compile
 * (`@ts-expect-error` below: `npm test` type-checks first and fails if one of them compiled).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createGrpcServer, type GrpcServer, serverStream, unary } from './server.js';
import { CoordinatorClient, coordinatorService, DatasetClient, datasetService, type BlobPart, type CoordinatorHandlers, type DatasetHandlers, type DatasetStub, type FetchGlobalModelRequest } from './proto.js';
import { callServerStream, callUnary, makeClient, receiveResumable, unanswered, untilAnswered } from './client.js';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { encodeBlob } from './blob.js';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { createLogger } from '../util/index.js';
import { InvalidFieldError } from '../errors.js';

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

describe('untilAnswered', () => {
  it('calls again while the answer does not come in time, and not after any other error or once its signal ends', async () => {
    g = createGrpcServer();
    const log = createLogger('test', { level: 'error' });
    let calls = 0;
    const handlers: Pick<DatasetHandlers, 'GetManifest'> = {
      // The first two calls are answered after their deadline; then one is refused, then answered.
      GetManifest: unary(log, 'GetManifest', async () => {
        calls++;
        if (calls <= 2) await new Promise((r) => setTimeout(r, 1_000));
        if (calls === 3) throw new InvalidFieldError('shard', 'a known shard', 'none');
        return { nodeId: 'site-a', task: 'pose', shards: [] };
      }),
    };
    g.server.addService(datasetService, handlers);
    const client = makeClient(DatasetClient, await g.listen('127.0.0.1:0'));
    try {
      const call = () => callUnary(client, 'GetManifest', {}, { timeoutMs: 200 });
      // Two deadlines passed, then the refusal is the answer (no fourth call).
      await expect(untilAnswered(call, new AbortController().signal)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
      expect(calls).toBe(3);
      expect((await untilAnswered(call, new AbortController().signal)).nodeId).toBe('site-a');
      expect(calls).toBe(4);
      // At most the attempts given.
      calls = 0;
      await expect(untilAnswered(call, new AbortController().signal, 2)).rejects.toMatchObject({ code: status.DEADLINE_EXCEEDED });
      expect(calls).toBe(2);
      // A signal that has ended: the first lost answer is the last.
      calls = 0;
      const ended = new AbortController();
      ended.abort();
      await expect(untilAnswered(call, ended.signal)).rejects.toMatchObject({ code: status.DEADLINE_EXCEEDED });
      expect(calls).toBe(1);
    } finally {
      client.close();
    }
  });
});

describe('untilAnswered and a reset stream', () => {
  it('calls again when the server side resets the stream with CANCEL (as a connection that closes does), not when its own signal cancelled it', async () => {
    // A plain HTTP/2 server: the first two streams are reset with CANCEL, as Node reports the
    // streams of a connection that closed; the third is answered as gRPC answers.
    let streams = 0;
    const server = http2.createServer();
    server.on('stream', (stream) => {
      streams++;
      if (streams <= 2) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      const body = datasetService.GetManifest.responseSerialize({ nodeId: 'site-a', task: 'pose', shards: [] });
      const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body]);
      framed.writeUInt32BE(body.length, 1);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(framed);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = makeClient(DatasetClient, `127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const call = (signal?: AbortSignal) => callUnary(client, 'GetManifest', {}, { timeoutMs: 5_000, ...(signal ? { signal } : {}) });
      // A reset alone reads as CANCELLED: the caller did not cancel it, so it is no answer.
      const reset = await call().catch((err: unknown) => err);
      expect(reset).toMatchObject({ code: status.CANCELLED });
      expect(unanswered(reset)).toBe(true);
      expect((await untilAnswered(() => call(), new AbortController().signal)).nodeId).toBe('site-a');
      expect(streams).toBe(3);
      // Cancelled by its own signal: that is the answer, not called again.
      const mine = new AbortController();
      const pending = untilAnswered(() => call(mine.signal), mine.signal);
      mine.abort();
      await expect(pending).rejects.toMatchObject({ code: status.CANCELLED });
      expect(unanswered({ code: status.CANCELLED, details: 'Cancelled on client' }, mine.signal)).toBe(false);
    } finally {
      client.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('receiveResumable', () => {
  it('asks a download cut off again from the first chunk it lacks, keeps what came, and refuses another blob\'s header', async () => {
    g = createGrpcServer();
    const log = createLogger('test', { level: 'error' });
    const blob = randomBytes(5 * 65_536 + 100);
    const { header, chunks } = encodeBlob(blob, 65_536);
    const other = encodeBlob(randomBytes(blob.length), 65_536).header;
    const asked: number[] = [];
    let swap = false;
    const handlers: Pick<CoordinatorHandlers, 'FetchGlobalModel'> = {
      // The first stream stops after two chunks and sends nothing more (its deadline passes);
      // the next goes on from the chunk asked for.
      FetchGlobalModel: serverStream<FetchGlobalModelRequest, BlobPart>(log, 'FetchGlobalModel', async (req, send) => {
        asked.push(req.fromChunk);
        await send({ part: 'header', header: swap && asked.length > 1 ? other : header });
        const first = asked.length === 1;
        for (const chunk of chunks.slice(req.fromChunk, first ? 2 : undefined)) await send({ part: 'chunk', chunk });
        if (first) await new Promise((r) => setTimeout(r, 1_000));
      }),
    };
    g.server.addService(coordinatorService, handlers);
    const client = makeClient(CoordinatorClient, await g.listen('127.0.0.1:0'));
    const open = (fromChunk: number) => callServerStream(client, 'FetchGlobalModel', { jobId: 'j', round: 1, fromChunk }, { timeoutMs: 300 });
    const limits = { maxBytes: blob.length, expectedSha256: header.sha256.toString('hex') };
    try {
      const got = await receiveResumable(open, limits, new AbortController().signal);
      expect(got.equals(blob)).toBe(true);
      expect(asked).toEqual([0, 2]);
      // A resumed stream that names another blob is refused, not spliced in.
      asked.length = 0;
      swap = true;
      await expect(receiveResumable(open, limits, new AbortController().signal)).rejects.toThrow(/^header: expected the blob the download began/);
      expect(asked).toEqual([0, 2]);
    } finally {
      client.close();
    }
  });
});
