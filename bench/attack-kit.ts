/**
 * What a hostile peer sends a coordinator, on real connections: streams of gRPC messages left
 * incomplete, messages sent a byte at a time, update uploads one byte short. Used by
 * `npm run bench:attack` and the attack suite (test/attacks.test.ts). Also the measures of a
 * coordinator process under attack: its resident memory and a well-behaved client's latency.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { callUnary, CoordinatorClient, type BlobPart, type CoordinatorStub, type UpdateHeader } from '../src/wire/index.js';

/** How one attacking stream ended: reset by the server (with its HTTP/2 code), a gRPC status, or still open. */
export interface StreamEnd {
  rstCode: number | null;
  grpcStatus: number | null;
  grpcMessage: string;
  ms: number;
}

/** One path's gRPC request headers. */
const headersOf = (path: string) => ({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });

function track(stream: http2.ClientHttp2Stream, t0: number): Promise<StreamEnd> {
  return new Promise((resolve) => {
    const end: StreamEnd = { rstCode: null, grpcStatus: null, grpcMessage: '', ms: 0 };
    const trailers = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) end.grpcStatus = Number(h['grpc-status']);
      if (h['grpc-message'] !== undefined) end.grpcMessage = decodeURIComponent(String(h['grpc-message']));
    };
    stream.on('response', trailers);
    stream.on('trailers', trailers);
    stream.on('error', () => {});
    stream.resume();
    stream.once('close', () => {
      end.rstCode = stream.rstCode ?? null;
      end.ms = performance.now() - t0;
      resolve(end);
    });
  });
}

/**
 * Opens `streams` streams to `path` on one HTTP/2 connection, each declaring a message of
 * `declaredBytes` and sending all of it but one byte (from one shared buffer: the attacker
 * holds nothing per stream). Resolves once every stream has ended or `holdMs` has passed; the
 * connection is then closed.
 */
export async function partialMessages(address: string, path: string, streams: number, declaredBytes: number, holdMs: number): Promise<StreamEnd[]> {
  const session = http2.connect(`http://${address}`);
  session.on('error', () => {});
  const body = Buffer.alloc(declaredBytes - 1);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(declaredBytes, 1);
  const t0 = performance.now();
  const ends: Promise<StreamEnd>[] = [];
  for (let i = 0; i < streams; i++) {
    const s = session.request(headersOf(path));
    ends.push(track(s, t0));
    s.write(prefix);
    s.write(body);
  }
  const all = Promise.all(ends);
  const timer = new Promise<null>((r) => setTimeout(() => r(null), holdMs));
  const got = await Promise.race([all, timer]);
  session.destroy();
  return got ?? all;
}

/** One stream to `path` declaring a `declaredBytes` message and sending it a byte every `everyMs`. */
export async function slowMessage(address: string, path: string, declaredBytes: number, everyMs: number, maxMs: number): Promise<StreamEnd> {
  const session = http2.connect(`http://${address}`);
  session.on('error', () => {});
  const s = session.request(headersOf(path));
  const t0 = performance.now();
  const end = track(s, t0);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(declaredBytes, 1);
  s.write(prefix);
  let sent = 0;
  const timer = setInterval(() => {
    if (s.closed || ++sent >= declaredBytes || performance.now() - t0 > maxMs) return;
    s.write(Buffer.from([0]));
  }, everyMs);
  const got = await Promise.race([end, new Promise<null>((r) => setTimeout(() => r(null), maxMs))]);
  clearInterval(timer);
  session.destroy();
  return got ?? { rstCode: null, grpcStatus: null, grpcMessage: 'still open', ms: performance.now() - t0 };
}

/**
 * Starts an upload of `header` and sends `messages` (a header, then chunks) without ending
 * it; resolves with the status the server ends it with, or null when still open after `maxMs`.
 */
export function openUpload(coordinator: CoordinatorStub, messages: BlobPart<UpdateHeader>[], maxMs: number): Promise<{ code: number; details: string; ms: number } | null> {
  const client = coordinator as unknown as grpc.Client;
  const m = (CoordinatorClient as unknown as { service: Record<string, grpc.MethodDefinition<unknown, unknown>> }).service.SubmitUpdate!;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      call.cancel();
      resolve(null);
    }, maxMs);
    const call = client.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), { deadline: Date.now() + maxMs + 5000 }, (err) => {
      clearTimeout(timer);
      resolve(err ? { code: err.code, details: err.details, ms: performance.now() - t0 } : { code: 0, details: 'accepted', ms: performance.now() - t0 });
    });
    call.on('error', () => {});
    for (const msg of messages) call.write(msg);
  });
}

/** Resident memory of process `pid`, in bytes (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** A probe: a well-behaved client's GetStatus every `everyMs` and the coordinator's peak RSS, until stopped. */
export function probe(address: string, pid: number, everyMs = 100): { stop(): Promise<{ latencies: number[]; failures: string[]; peakRss: number }> } {
  const client = new CoordinatorClient(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const latencies: number[] = [];
  const failures: string[] = [];
  let peakRss = rssOf(pid);
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        await callUnary(client, 'GetStatus', {}, { timeoutMs: 5000 });
        latencies.push(performance.now() - t0);
      } catch (err) {
        failures.push((err as Error).message.split('\n')[0]!);
      }
      try {
        peakRss = Math.max(peakRss, rssOf(pid));
      } catch {
        break; // the process is gone
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      (client as unknown as grpc.Client).close();
      return { latencies, failures, peakRss };
    },
  };
}

/** The `p` quantile of `xs` (NaN when empty). */
export const quantile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
