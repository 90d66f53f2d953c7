/**
 * The data plane's thread: a gRPC server of its own (its own port, event loop and HTTP/2
 * sessions) that serves trainers' downloads of the round's model and takes their uploads, and
 * relays each call to the coordinator's main thread (`data-plane.ts`) as messages.
 *
 * - An upload (SubmitUpdate): the call's metadata, each request message as grpc-js decoded it
 *   (a chunk's bytes moved, not copied, when they own their memory), its end or cancellation.
 *   The main thread answers with the response or the error, and asks this side to pause a call
 *   while it has not taken what came.
 * - A download (FetchGlobalModel): the call's metadata and request. The main thread writes the
 *   response messages: the model's chunks, framed once in shared memory, come as views of it and
 *   are written to the socket from here; it is told when a call's stream is full and drained.
 *
 * So the bytes' reading and writing, HTTP/2 framing, gRPC message assembly, decoding and garbage
 * run here, not on the loop that answers every node's heartbeats and long polls.
 */
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { alreadyFramed, coordinatorService, createGrpcServer, serveIdentity, serverCredentials } from '../src/wire/index.js';
import { roleLogger } from '../src/node/index.js';
import type { DataPlaneInit, FromMain, ToMain } from './data-plane.js';

const init = workerData as DataPlaneInit;
const port = parentPort!;
const log = roleLogger('coordinator.data-plane', init.log);
const post = (m: ToMain, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

/**
 * A chunk's bytes of this size or more, in a buffer of their own (grpc-js gathers a message
 * larger than one HTTP/2 frame into one), are moved to the main thread; smaller ones, which may
 * share Node's 8 KiB pool with other messages, are copied.
 */
const OWN_MIN_BYTES = 64 << 10;
const OWN_SLACK_BYTES = 256;

/** A request message as it can cross to the main thread, and the buffers it moves. */
function movable(msg: Record<string, unknown>): [Record<string, unknown>, ArrayBuffer[]] {
  const chunk = msg.chunk as { data?: Buffer } | undefined;
  const data = chunk?.data;
  if (!data || !(data instanceof Uint8Array)) return [msg, []];
  const owns = data.length >= OWN_MIN_BYTES && data.buffer instanceof ArrayBuffer && data.buffer.byteLength - data.length < OWN_SLACK_BYTES;
  const bytes = owns ? data : new Uint8Array(data);
  return [{ ...msg, chunk: { ...chunk, data: bytes } }, [bytes.buffer as ArrayBuffer]];
}

const calls = new Map<number, { call: grpc.ServerReadableStream<unknown, unknown>; callback: grpc.sendUnaryData<unknown> }>();
let nextId = 1;

const SubmitUpdate: grpc.handleClientStreamingCall<unknown, unknown> = (call, callback) => {
  const id = nextId++;
  calls.set(id, { call, callback });
  post({ op: 'call', id, method: 'SubmitUpdate', metadata: call.metadata.toJSON() });
  // The chunks' digest, taken here as they come so that the main thread need not read them.
  const hash = createHash('sha256');
  call.on('data', (msg: Record<string, unknown>) => {
    if (!calls.has(id)) return;
    const data = (msg.chunk as { data?: Buffer } | undefined)?.data;
    if (msg.part === 'chunk' && data) hash.update(data);
    const [m, transfer] = movable(msg);
    post({ op: 'message', id, message: m }, transfer);
  });
  // grpc-js ends a stream whose connection closed as if the client had half-closed it, and
  // marks the call cancelled only in the ticks after: the end is told once those have run, and
  // not at all for a call cancelled by then (it would read as a truncated upload).
  call.on('end', () => {
    setImmediate(() => {
      if (calls.has(id) && !call.cancelled) post({ op: 'end', id, digest: hash.digest() });
    });
  });
  call.on('cancelled', () => {
    if (calls.delete(id)) post({ op: 'cancelled', id });
  });
  call.on('error', () => {});
};

const downloads = new Map<number, grpc.ServerWritableStream<unknown, unknown>>();

const FetchGlobalModel: grpc.handleServerStreamingCall<unknown, unknown> = (call) => {
  const id = nextId++;
  downloads.set(id, call);
  post({ op: 'call', id, method: 'FetchGlobalModel', metadata: call.metadata.toJSON(), request: call.request });
  call.on('drain', () => {
    if (downloads.has(id)) post({ op: 'drain', id });
  });
  call.on('cancelled', () => {
    if (downloads.delete(id)) post({ op: 'cancelled', id });
  });
  call.on('error', () => {});
};

/** What the main thread writes to a download, its end or its error. */
function onDownload(m: FromMain & { id: number }): void {
  const call = downloads.get(m.id);
  if (!call) return;
  switch (m.op) {
    case 'write':
      if (!call.write(m.framed ? alreadyFramed(m.framed) : m.message)) post({ op: 'full', id: m.id });
      break;
    case 'end':
      downloads.delete(m.id);
      call.end();
      break;
    case 'error':
      downloads.delete(m.id);
      call.emit('error', { code: m.code, details: m.details, metadata: metadataOf(m.metadata) });
      break;
    default:
      break;
  }
}

function metadataOf(map: Record<string, grpc.MetadataValue[]> | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [k, values] of Object.entries(map ?? {})) for (const v of values) metadata.add(k, typeof v === 'string' ? v : Buffer.from(v));
  return metadata;
}

port.on('message', (m: FromMain) => {
  if (m.op === 'close') {
    void server.close(m.graceMs).then(() => post({ op: 'closed' }));
    return;
  }
  if (downloads.has(m.id)) {
    onDownload(m);
    return;
  }
  const c = calls.get(m.id);
  if (!c) return;
  switch (m.op) {
    case 'pause':
      c.call.pause();
      break;
    case 'resume':
      c.call.resume();
      break;
    case 'metadata':
      c.call.sendMetadata(metadataOf(m.metadata));
      break;
    case 'response':
      calls.delete(m.id);
      c.callback(null, m.response);
      break;
    case 'error':
      calls.delete(m.id);
      // What the client still sends is read and dropped, so that it reads the status.
      c.call.resume();
      c.callback({ code: m.code, details: m.details, metadata: metadataOf(m.metadata) });
      break;
    default:
      break;
  }
});

const server = createGrpcServer({
  maxStreamsPerConnection: init.limits.maxStreamsPerConnection, log,
  streamLimits: { connectionBytes: init.limits.bufferedBytesPerConnection, totalBytes: init.limits.bufferedBytes, messageMs: init.limits.messageDeadlineMs },
});
// A download's request goes to the main thread as the bytes that came: a signed one is checked
// against their digest there.
const definition = { ...coordinatorService, FetchGlobalModel: { ...coordinatorService.FetchGlobalModel, requestDeserialize: (body: Buffer) => body } };
server.server.addService(definition, { SubmitUpdate, FetchGlobalModel });
serveIdentity(server.server, log, init.identity, 'coordinator');
server.listen(init.listen, serverCredentials(init.tlsCert, init.tlsKey)).then(
  (address) => post({ op: 'listening', address }),
  (err: Error) => post({ op: 'failed', message: err.message }),
);
