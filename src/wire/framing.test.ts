/**
 * Pre-encoded responses are framed once and the same buffer is written to every stream (see
 * `framesPreEncoded` in proto.ts): a real server streams a model to two clients at
 * once, and grpc-js's own framing method is checked to hand back the ready buffer.
 */
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createGrpcServer, serverStream, type GrpcServer } from './server.js';
import { BlobAssembler, encodeBlob, sha256 } from './blob.js';
import { callServerStream, makeClient } from './client.js';
import { CoordinatorClient, coordinatorService, framesPreEncoded, preEncoded, type BlobPart } from './proto.js';
import { createLogger } from '../util/index.js';

const { BaseServerInterceptingCall } = createRequire(import.meta.url)('@grpc/grpc-js/build/src/server-interceptors.js') as {
  BaseServerInterceptingCall: { prototype: { serializeMessage(value: unknown): Buffer } };
};

let g: GrpcServer | null = null;
afterEach(async () => g?.close());

describe('pre-encoded responses', () => {
  it('are framed once: grpc-js hands back the same prefixed buffer each time, and frames other messages itself', () => {
    expect(framesPreEncoded).toBe(true);
    const part: BlobPart = { part: 'chunk', chunk: { index: 3, data: Buffer.from('seven bytes') } };
    const bytes = coordinatorService.FetchGlobalModel.responseSerialize(part);
    const msg = preEncoded<BlobPart>(bytes);
    // `this` is not read for a pre-encoded message.
    const a = BaseServerInterceptingCall.prototype.serializeMessage.call(null, msg);
    const b = BaseServerInterceptingCall.prototype.serializeMessage.call(null, msg);
    expect(a).toBe(b);
    expect([a[0], a.readUInt32BE(1)]).toEqual([0, bytes.length]);
    expect(a.subarray(5).equals(bytes)).toBe(true);
    // What a client decodes is the message itself.
    expect(coordinatorService.FetchGlobalModel.responseSerialize(msg).equals(bytes)).toBe(true);
    // Any other message is framed by grpc-js, into a buffer of its own each time.
    const handler = { serialize: coordinatorService.FetchGlobalModel.responseSerialize };
    const c = BaseServerInterceptingCall.prototype.serializeMessage.call({ handler }, part);
    const d = BaseServerInterceptingCall.prototype.serializeMessage.call({ handler }, part);
    expect(c).not.toBe(d);
    expect(c.equals(a)).toBe(true);
  });

  it('reach two clients downloading the same framed messages at once, whole and in order', async () => {
    const model = randomBytes((3 << 20) + 12_345);
    const { header, chunks } = encodeBlob(model, 1 << 20, sha256(model));
    const parts: BlobPart[] = [{ part: 'header', header }, ...chunks.map((chunk): BlobPart => ({ part: 'chunk', chunk }))];
    const messages = parts.map((m) => preEncoded<BlobPart>(coordinatorService.FetchGlobalModel.responseSerialize(m)));
    g = createGrpcServer();
    const log = createLogger('test', { level: 'error' });
    g.server.addService(coordinatorService, {
      FetchGlobalModel: serverStream<unknown, BlobPart>(log, 'FetchGlobalModel', async (_req, send) => {
        for (const m of messages) await send(m);
      }),
    });
    const address = await g.listen('127.0.0.1:0');
    const download = async () => {
      const client = makeClient(CoordinatorClient, address);
      try {
        let assembler: BlobAssembler | null = null;
        for await (const m of callServerStream(client, 'FetchGlobalModel', { jobId: 'j', round: 1, fromChunk: 0 }, { timeoutMs: 20_000 })) {
          if (m.part === 'header') assembler = new BlobAssembler(m.header, { maxBytes: 64 << 20 });
          else assembler!.push(m.chunk!);
        }
        return assembler!.finish();
      } finally {
        client.close();
      }
    };
    const [one, two] = await Promise.all([download(), download()]);
    expect(one.equals(model)).toBe(true);
    expect(two.equals(model)).toBe(true);
  });
});
