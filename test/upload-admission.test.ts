/**
 * Uploads admitted before their bytes: the coordinator answers an update's header with response
 * headers once it has room for it (or RESOURCE_EXHAUSTED), and a trainer sends the chunks only
 * then. A thousand trainers uploading at once thus send no more than the coordinator lets in,
 * which stays within what its stream guard allows (--max-upload-mib at most --max-buffered-mib,
 * coordinator-limits.test.ts).
 */
import { Metadata, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { grpcError } from './helpers.js';
import { UploadBudgetError } from '../src/errors.js';
import { callClientStream, clientStream, coordinatorService, createGrpcServer, encodeBlob, makeClient, CoordinatorClient, type BlobPart, type UpdateHeader } from '../src/wire/index.js';
import { createLogger } from '../src/util/index.js';

let g: ReturnType<typeof createGrpcServer> | null = null;
afterEach(async () => g?.close());

/** What the server saw of each upload, by node id: when it admitted it, and when each chunk came. */
interface Seen { admittedAt: number; chunksAt: number[] }

/** A SubmitUpdate server that admits after `delayMs`, refusing node ids starting with "full". */
async function server(delayMs: number, seen: Map<string, Seen>): Promise<string> {
  g = createGrpcServer();
  const log = createLogger('test', { level: 'error' });
  g.server.addService(coordinatorService, {
    SubmitUpdate: clientStream<BlobPart<UpdateHeader>, { accepted: boolean; receivedUpdates: number }>(log, 'SubmitUpdate', async (messages, _signal, call) => {
      let node = '';
      for await (const msg of messages) {
        if (msg.part === 'header') {
          node = msg.header.nodeId;
          await new Promise((r) => setTimeout(r, delayMs));
          if (node.startsWith('full')) throw new UploadBudgetError(4096, 1024, 2048);
          seen.set(node, { admittedAt: performance.now(), chunksAt: [] });
          call.sendMetadata(new Metadata());
        } else {
          seen.get(node)!.chunksAt.push(performance.now());
        }
      }
      return { accepted: true, receivedUpdates: seen.size };
    }),
  });
  return g.listen('127.0.0.1:0');
}

/** An upload of 4 chunks whose messages record when each is taken to be written. */
function upload(nodeId: string, pulls: number[]): Iterable<BlobPart<UpdateHeader>> {
  const { header: blob, chunks } = encodeBlob(Buffer.alloc(4096, 7), 1024);
  const header = { nodeId, taskId: 't', jobId: 'j', round: 1, numSamples: 1, trainLoss: 0, numParams: 1023, blob, trainSeconds: 0, masked: true } as UpdateHeader;
  const parts: BlobPart<UpdateHeader>[] = [{ part: 'header', header }, ...chunks.map((chunk) => ({ part: 'chunk' as const, chunk }))];
  return (function* () {
    for (const p of parts) {
      pulls.push(performance.now());
      yield p;
    }
  })();
}

describe('upload admission', () => {
  it('sends an upload\'s chunks only once the server admitted its header, and none when it refused', async () => {
    const seen = new Map<string, Seen>();
    const address = await server(300, seen);
    const client = makeClient(CoordinatorClient, address);
    try {
      const pulls: number[] = [];
      expect(await callClientStream(client, 'SubmitUpdate', upload('a', pulls), { timeoutMs: 10_000, awaitAdmission: true })).toEqual({ accepted: true, receivedUpdates: 1 });
      expect(pulls).toHaveLength(5);
      // The first chunk was taken to be written after the server admitted the header.
      expect(pulls[1]!).toBeGreaterThanOrEqual(seen.get('a')!.admittedAt);
      expect(seen.get('a')!.chunksAt).toHaveLength(4);

      const refused: number[] = [];
      expect(await grpcError(callClientStream(client, 'SubmitUpdate', upload('full-b', refused), { timeoutMs: 10_000, awaitAdmission: true })))
        .toEqual({ code: status.RESOURCE_EXHAUSTED, details: 'upload of 4096 bytes: updates in flight hold 1024 of the 2048 bytes allowed (--max-upload-mib); retry shortly' });
      expect(refused).toHaveLength(1);

      // Without waiting, a refused upload's chunks are all written while the server decides.
      const eager: number[] = [];
      expect((await grpcError(callClientStream(client, 'SubmitUpdate', upload('full-c', eager), { timeoutMs: 10_000 }))).code).toBe(status.RESOURCE_EXHAUSTED);
      expect(eager).toHaveLength(5);
    } finally {
      client.close();
    }
  });
});
