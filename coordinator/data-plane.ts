/**
 * The coordinator's data plane: the round's model downloads (FetchGlobalModel) and trainers'
 * uploads (SubmitUpdate) served by a gRPC server on a thread of its own
 * (`data-plane-worker.ts`), on a port of its own that trainers learn when they register. At a
 * thousand trainers a round moves gigabytes each way; on the main thread their reading and
 * writing, HTTP/2 framing, message assembly, digests and garbage came in bursts that held the
 * event loop that answers heartbeats, long polls and every secure-aggregation stage.
 *
 * An upload is relayed here as a {@link RelayedCall}: a readable stream of the request messages
 * with the call's metadata, handed to the very handler the main server runs for SubmitUpdate
 * (signature check, admission, per-node call limit, the round's checks, the spool, the fold into
 * the group's sum). Its answer goes back to the thread, which answers the trainer. A call the
 * handler has not kept up with is paused on the thread, so HTTP/2 flow control holds the
 * trainer rather than memory here. A download is relayed as a {@link RelayedServerCall}, whose
 * messages (the model's chunks, framed once in shared memory) the thread writes.
 */
import { Worker } from 'node:worker_threads';
import { Readable } from 'node:stream';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { tsxApiUrl, type Logger } from '../src/util/index.js';
import { coordinatorService, deserializeWithDigest, framedBytes } from '../src/wire/index.js';
import type { LogConfig } from '../src/node/index.js';

/** What the thread is started with. */
export interface DataPlaneInit {
  listen: string;
  tlsCert: string;
  tlsKey: string;
  /** The coordinator's hotkey, as actiquest.v1.Identity/Who names it. */
  identity: string;
  /** Where the thread logs: the coordinator's log. */
  log: LogConfig;
  limits: { maxStreamsPerConnection: number; bufferedBytes: number; bufferedBytesPerConnection: number; messageDeadlineMs: number };
}

/** Messages from the thread. */
export type ToMain =
  | { op: 'listening'; address: string }
  | { op: 'failed'; message: string }
  | { op: 'call'; id: number; method: 'SubmitUpdate' | 'FetchGlobalModel'; metadata: Record<string, grpc.MetadataValue[]>; request?: unknown }
  | { op: 'full' | 'drain'; id: number }
  | { op: 'message'; id: number; message: Record<string, unknown> }
  | { op: 'end'; id: number; digest: Uint8Array }
  | { op: 'cancelled'; id: number }
  | { op: 'closed' };

/** Messages to the thread. */
export type FromMain =
  | { op: 'pause' | 'resume'; id: number }
  | { op: 'metadata'; id: number; metadata: Record<string, grpc.MetadataValue[]> }
  | { op: 'response'; id: number; response: unknown }
  | { op: 'write'; id: number; framed?: Uint8Array; message?: unknown }
  | { op: 'end'; id: number }
  | { op: 'error'; id: number; code: grpc.status; details: string; metadata?: Record<string, grpc.MetadataValue[]> }
  | { op: 'close'; graceMs: number };

/** Request messages a relayed call buffers before its thread pauses it (chunks of up to 4 MiB). */
const HIGH_WATER_MESSAGES = 4;

/**
 * One call taken by the data plane, as the main thread's handler sees it: what grpc-js's
 * server-side readable call offers the handlers here (metadata, `cancelled` and its event, the
 * messages as a stream, `destroy` to end it with an error).
 */
export class RelayedCall extends Readable {
  cancelled = false;
  private paused = false;
  private digest: Buffer | null = null;

  constructor(readonly metadata: grpc.Metadata, private readonly flow: (op: 'pause' | 'resume') => void, private readonly respond: (metadata: grpc.Metadata) => void) {
    super({ objectMode: true, highWaterMark: HIGH_WATER_MESSAGES });
  }

  /** Response headers, sent by the thread before the response (an upload's admission). */
  sendMetadata(metadata: grpc.Metadata): void {
    this.respond(metadata);
  }

  /** A request message from the thread; pauses the call there while this side is behind. */
  deliver(message: unknown): void {
    if (this.destroyed) return;
    if (!this.push(message) && !this.paused) {
      this.paused = true;
      this.flow('pause');
    }
  }

  /** The trainer ended its stream: `digest` is the sha256 of its chunks' bytes, in order. */
  finish(digest: Uint8Array): void {
    this.digest = Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength);
    if (!this.destroyed) this.push(null);
  }

  /** The sha256 of the chunks' bytes, taken on the thread as they came (known once the stream ended). */
  digestOfChunks(): Buffer {
    if (!this.digest) throw new Error('digestOfChunks(): the stream has not ended');
    return this.digest;
  }

  /** The trainer cancelled the call (or its deadline passed). */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
    if (!this.destroyed) this.push(null);
  }

  override _read(): void {
    if (!this.paused) return;
    this.paused = false;
    this.flow('resume');
  }

  getPeer(): string {
    return 'data-plane';
  }
}

/** What a relayed download sends its thread: a message, its end or its error. */
type DownloadOut =
  | { op: 'write'; framed?: Uint8Array; message?: unknown }
  | { op: 'end' }
  | { op: 'error'; code: grpc.status; details: string; metadata?: Record<string, grpc.MetadataValue[]> };

/**
 * One download taken by the data plane, as the main thread's handler sees it: what grpc-js's
 * server-side writable call offers the handlers here (request, metadata, `cancelled` and its
 * event, `write` with back-pressure and `drain`, `end`, an 'error' event that ends the call with
 * its status). A message framed once in shared memory (the model's chunks) goes to the thread as
 * a view of that memory, not a copy.
 */
export class RelayedServerCall extends EventEmitter {
  cancelled = false;
  private full = false;
  private ended = false;

  constructor(readonly request: unknown, readonly metadata: grpc.Metadata, private readonly out: (m: DownloadOut) => void) {
    super();
    this.on('error', (e: Partial<grpc.ServiceError>) => {
      if (this.ended) return;
      this.ended = true;
      this.out({ op: 'error', code: e.code ?? grpc.status.UNKNOWN, details: e.details ?? e.message ?? 'error', metadata: e.metadata?.toJSON() });
    });
  }

  /** Sends `message`; false while the thread says the call's stream is full (wait for 'drain'). */
  write(message: unknown): boolean {
    if (this.ended || this.cancelled) return true;
    const framed = framedBytes(message);
    this.out(framed ? { op: 'write', framed } : { op: 'write', message });
    return !this.full;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.out({ op: 'end' });
    this.emit('finish');
  }

  /** The thread's stream for this call is full, or drained again. */
  flow(op: 'full' | 'drain'): void {
    if (op === 'full') {
      this.full = true;
    } else if (this.full) {
      this.full = false;
      this.emit('drain');
    }
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
    // A send waiting for room goes on (and finds the call cancelled).
    this.emit('drain');
    this.emit('close');
  }

  getPeer(): string {
    return 'data-plane';
  }
}

/** Buffers that crossed from the thread are Uint8Arrays: the handlers read them as Buffers. */
function asBuffers(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return value.map(asBuffers);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = asBuffers(v);
    return out;
  }
  return value;
}

function metadataOf(map: Record<string, grpc.MetadataValue[]>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, values] of Object.entries(map)) {
    for (const v of values) md.add(k, typeof v === 'string' ? v : Buffer.from((v as Uint8Array).buffer, (v as Uint8Array).byteOffset, (v as Uint8Array).byteLength));
  }
  return md;
}

/** The main server's handlers of the calls the data plane takes. */
export interface DataPlaneHandlers {
  SubmitUpdate: grpc.handleClientStreamingCall<unknown, unknown>;
  FetchGlobalModel: grpc.handleServerStreamingCall<unknown, unknown>;
}

/** The data plane: its thread, the address it listens at, and the calls it relays. */
export class DataPlane {
  private readonly calls = new Map<number, RelayedCall>();
  private readonly downloads = new Map<number, RelayedServerCall>();
  private closing: Promise<void> | null = null;

  private constructor(private readonly worker: Worker, readonly address: string, private readonly log: Logger) {}

  /** The port trainers are told to send their updates to. */
  get port(): number {
    return Number(this.address.slice(this.address.lastIndexOf(':') + 1));
  }

  /** Starts the thread and its server; `handlers` are the main server's, as it serves them. */
  static async start(init: DataPlaneInit, handlers: DataPlaneHandlers, log: Logger): Promise<DataPlane> {
    // The worker is TypeScript: tsx's loader first, then the module (as the mask pool does).
    const url = new URL('./data-plane-worker.ts', import.meta.url).href;
    const boot = `import(${JSON.stringify(tsxApiUrl())}).then(({ tsImport }) => tsImport(${JSON.stringify(url)}, ${JSON.stringify(url)}))`;
    const worker = new Worker(boot, { eval: true, workerData: init });
    const address = await new Promise<string>((resolve, reject) => {
      const fail = (err: Error) => reject(err);
      worker.once('error', fail);
      worker.once('exit', (code) => reject(new Error(`the data plane's thread exited (code ${code}) before it listened`)));
      worker.on('message', function first(m: ToMain) {
        if (m.op !== 'listening' && m.op !== 'failed') return;
        worker.off('message', first);
        worker.off('error', fail);
        if (m.op === 'listening') resolve(m.address);
        else reject(new Error(`data plane: ${m.message}`));
      });
    }).catch(async (err: Error) => {
      await worker.terminate();
      throw err;
    });
    worker.removeAllListeners('exit');
    const plane = new DataPlane(worker, address, log);
    worker.on('message', (m: ToMain) => plane.onMessage(m, handlers));
    worker.on('error', (err) => {
      log.error('the data plane\'s thread failed: updates are refused until the coordinator is restarted', { error: err.message });
      for (const call of plane.calls.values()) call.destroy(err);
      for (const call of plane.downloads.values()) call.cancel();
      plane.calls.clear();
      plane.downloads.clear();
    });
    return plane;
  }

  private send(m: FromMain): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: ToMain, handlers: DataPlaneHandlers): void {
    switch (m.op) {
      case 'call': {
        const id = m.id;
        if (m.method === 'FetchGlobalModel') {
          const body = m.request as Uint8Array;
          let request: unknown;
          try {
            request = deserializeWithDigest(coordinatorService.FetchGlobalModel as grpc.MethodDefinition<unknown, unknown>, Buffer.from(body.buffer, body.byteOffset, body.byteLength));
          } catch {
            this.send({ op: 'error', id, code: grpc.status.INVALID_ARGUMENT, details: `FetchGlobalModelRequest: expected a protobuf message, got ${body.byteLength} bytes that do not parse` });
            break;
          }
          const call = new RelayedServerCall(request, metadataOf(m.metadata), (out) => {
            if (out.op !== 'write') this.downloads.delete(id);
            this.send({ ...out, id });
          });
          this.downloads.set(id, call);
          handlers.FetchGlobalModel(call as unknown as grpc.ServerWritableStream<unknown, unknown>);
          break;
        }
        const handler = handlers.SubmitUpdate;
        const call = new RelayedCall(metadataOf(m.metadata), (op) => this.send({ op, id }), (md) => this.send({ op: 'metadata', id, metadata: md.toJSON() }));
        this.calls.set(id, call);
        handler(call as unknown as grpc.ServerReadableStream<unknown, unknown>, (err, response) => {
          this.calls.delete(id);
          if (err) {
            const e = err as Partial<grpc.ServiceError>;
            this.send({ op: 'error', id, code: e.code ?? grpc.status.UNKNOWN, details: e.details ?? e.message ?? 'error', metadata: e.metadata?.toJSON() });
          } else {
            this.send({ op: 'response', id, response });
          }
        });
        break;
      }
      case 'message':
        this.calls.get(m.id)?.deliver(asBuffers(m.message));
        break;
      case 'end':
        this.calls.get(m.id)?.finish(m.digest);
        break;
      case 'cancelled':
        this.calls.get(m.id)?.cancel();
        this.downloads.get(m.id)?.cancel();
        this.downloads.delete(m.id);
        break;
      case 'full':
      case 'drain':
        this.downloads.get(m.id)?.flow(m.op);
        break;
      default:
        break;
    }
  }

  /** Stops taking calls (those running get `graceMs`), then ends the thread. */
  close(graceMs = 2_000): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => {
        const done = (m: ToMain) => {
          if (m.op === 'closed') resolve();
        };
        this.worker.on('message', done);
        this.worker.once('exit', () => resolve());
      });
      this.send({ op: 'close', graceMs });
      await Promise.race([closed, new Promise((r) => setTimeout(r, graceMs + 1000).unref())]);
      for (const call of this.calls.values()) call.cancel();
      for (const call of this.downloads.values()) call.cancel();
      this.calls.clear();
      this.downloads.clear();
      await this.worker.terminate();
      this.log.debug('data plane closed');
    })();
    return this.closing;
  }
}
