/**
 * `npm run bench`: figures and ratios against baselines measured in the same run.
 *
 * 1. Upload of a 256 MB update over loopback gRPC (receiver in another process, built like the
 *    coordinator: chunk codec, digest check, 16 MiB HTTP/2 window) against a raw TCP socket,
 *    and against grpc-js's default 64 KB window.
 * 2. Aggregation of 20 updates of 10M parameters (the streaming weighted sum, then the FedAvg
 *    step) against a plain memory copy of the same bytes.
 *
 * 3. SecAgg+ unmasking (n = 100, P = 10M, k = 14 and the full graph, 0/10/30% dropout) and
 *    masking against expanding and adding the same masks (bench/secagg.ts).
 *
 * Medians of `--repeat` runs (default 3). `--mb` sets the update size; `--only upload|aggregation|secagg`
 * runs one part; `--quick` skips the slowest case (full graph, 30% dropout).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { tsxLoaderUrl } from '../src/util/index.js';
import { parseArgs } from 'node:util';
import { callClientStream, makeClient, CoordinatorClient, type BlobPart, type UpdateHeader, encodeBlob } from '../src/wire/index.js';
import { WeightedSum, createFedAvg } from '../src/aggregation/index.js';

const { values } = parseArgs({ options: { mb: { type: 'string', default: '256' }, repeat: { type: 'string', default: '3' }, only: { type: 'string', default: '' }, quick: { type: 'boolean', default: false } } });
const MB = Number(values.mb);
const REPEAT = Number(values.repeat);
const HERE = path.dirname(fileURLToPath(import.meta.url));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const fmt = (x: number, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

async function startSink(windowBytes: number): Promise<{ child: ChildProcess; grpc: string; tcp: number }> {
  const child = spawn(process.execPath, ['--import', tsxLoaderUrl(), path.join(HERE, 'upload-server.ts'), String(windowBytes)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => readline.createInterface({ input: child.stdout }).once('line', resolve));
  return { child, ...(JSON.parse(line) as { grpc: string; tcp: number }) };
}

async function grpcUpload(address: string, data: Buffer): Promise<number> {
  const client = makeClient(CoordinatorClient, address);
  const { header: blob, chunks } = encodeBlob(data, 1 << 20);
  const header: UpdateHeader = { nodeId: 'b', taskId: 't', jobId: 'j', round: 1, numSamples: 1, trainLoss: 0, numParams: data.length / 4, blob, trainSeconds: 0, masked: false };
  const msgs: BlobPart<UpdateHeader>[] = [{ part: 'header', header }, ...chunks.map((chunk) => ({ part: 'chunk' as const, chunk }))];
  // Warm the channel so connection set-up is not timed.
  await callClientStream(client, 'SubmitUpdate', [{ part: 'header', header: { ...header, blob: encodeBlob(Buffer.alloc(4)).header } }, { part: 'chunk', chunk: { index: 0, data: Buffer.alloc(4) } }], { timeoutMs: 60_000 });
  const t0 = performance.now();
  await callClientStream(client, 'SubmitUpdate', msgs, { timeoutMs: 600_000 });
  const s = (performance.now() - t0) / 1000;
  client.close();
  return s;
}

async function tcpUpload(port: number, data: Buffer): Promise<number> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const t0 = performance.now();
  const head = Buffer.alloc(4);
  head.writeUInt32LE(data.length / (1024 * 1024));
  sock.write(head);
  for (let off = 0; off < data.length; off += 1 << 20) {
    if (!sock.write(data.subarray(off, off + (1 << 20)))) await new Promise((r) => sock.once('drain', r));
  }
  await new Promise<void>((r) => sock.once('data', () => r()));
  const s = (performance.now() - t0) / 1000;
  sock.destroy();
  return s;
}

async function benchUpload(): Promise<void> {
  console.log(`\n== upload of a ${MB} MB update over loopback (receiver in a separate process), median of ${REPEAT}`);
  const data = Buffer.alloc(MB * 1024 * 1024);
  for (let i = 0; i < data.length; i += 4) data.writeFloatLE(Math.sin(i), i);
  const results: Record<string, number[]> = { tcp: [], grpc16: [], grpc64k: [] };
  const raised = await startSink(16 << 20);
  const stock = await startSink(65_535);
  try {
    for (let r = 0; r < REPEAT; r++) {
      results.tcp!.push(await tcpUpload(raised.tcp, data));
      results.grpc16!.push(await grpcUpload(raised.grpc, data));
      results.grpc64k!.push(await grpcUpload(stock.grpc, data));
    }
  } finally {
    raised.child.kill();
    stock.child.kill();
  }
  const rate = (k: string) => MB / median(results[k]!);
  const tcp = rate('tcp');
  console.log(`  raw TCP (node:net, 1 MiB writes)                ${fmt(tcp).padStart(7)} MB/s`);
  console.log(`  gRPC, 1 MiB chunks, 16 MiB window, sha256 check  ${fmt(rate('grpc16')).padStart(7)} MB/s   ratio to raw TCP ${fmt(rate('grpc16') / tcp, 2)}`);
  console.log(`  gRPC, same, grpc-js default 64 KB window         ${fmt(rate('grpc64k')).padStart(7)} MB/s   ratio to raw TCP ${fmt(rate('grpc64k') / tcp, 2)}`);
}

function benchAggregation(): void {
  const P = 10_000_000;
  const N = 20;
  console.log(`\n== aggregation of ${N} updates of ${fmt(P)} parameters, median of ${REPEAT}`);
  const updates = Array.from({ length: N }, (_, k) => Float32Array.from({ length: P }, (_, i) => Math.sin(i + k)));
  const global = new Float32Array(P);
  const copy: number[] = [], sum: number[] = [], step: number[] = [];
  for (let r = 0; r < REPEAT; r++) {
    const dst = new Float32Array(P);
    dst.fill(0);
    let t0 = performance.now();
    for (const u of updates) dst.set(u);
    copy.push(performance.now() - t0);
    const acc = new WeightedSum(P);
    acc.sum.fill(0);
    t0 = performance.now();
    for (const u of updates) acc.add(u, 100);
    sum.push(performance.now() - t0);
    t0 = performance.now();
    createFedAvg().aggregateTrain(global, acc);
    step.push(performance.now() - t0);
  }
  const gb = (N * P * 4) / 1e9;
  const [c, s, f] = [median(copy), median(sum), median(step)];
  console.log(`  memory copy of the same bytes (TypedArray.set)   ${fmt(c, 1).padStart(7)} ms   ${fmt(gb / (c / 1000), 1)} GB/s`);
  console.log(`  weighted sum, updates folded in as they arrive   ${fmt(s, 1).padStart(7)} ms   ${fmt(gb / (s / 1000), 1)} GB/s   ratio to copy ${fmt(s / c, 2)}`);
  console.log(`  FedAvg server step on the sum (once a round)     ${fmt(f, 1).padStart(7)} ms`);
}

console.log(`actiquest bench (node ${process.version}, ${(await import('node:os')).cpus().length} cpus)`);
if (!values.only || values.only === 'upload') await benchUpload();
if (!values.only || values.only === 'aggregation') benchAggregation();
if (!values.only || values.only === 'scoring') await (await import('./scoring.js')).benchScoring(60, values.quick ? 5 : 20);
if (!values.only || values.only === 'secagg') await (await import('./secagg.js')).benchSecAgg({ quick: values.quick });
