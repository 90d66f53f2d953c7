/**
 * The receiving side of the upload benchmark, run as its own process: a gRPC server built the
 * way the coordinator's is (`createGrpcServer`, same message limits and window), whose
 * SubmitUpdate reassembles and digest-checks the blob with the real `BlobAssembler`; and a raw
 * TCP sink that counts bytes. Prints one JSON line with both ports.
 */
import net from 'node:net';
import { createGrpcServer, coordinatorService, type BlobPart, type UpdateHeader, BlobAssembler, BufferPool, clientStream } from '../src/wire/index.js';
import { createLogger } from '../src/util/index.js';

const windowBytes = Number(process.argv[2] ?? 16 << 20);
const log = createLogger('bench.sink', { level: 'error' });
const grpc = createGrpcServer({ windowBytes });
const pool = new BufferPool();
const notImplemented = () => { throw new Error('not part of the benchmark'); };
grpc.server.addService(coordinatorService, {
  ...Object.fromEntries(Object.keys(coordinatorService).map((k) => [k, notImplemented])),
  SubmitUpdate: clientStream<BlobPart<UpdateHeader>, { accepted: boolean; receivedUpdates: number }>(log, 'SubmitUpdate', async (messages) => {
    let asm: BlobAssembler | null = null;
    for await (const m of messages) {
      if (m.part === 'header') asm = new BlobAssembler(m.header.blob, { maxBytes: 1 << 30, allocate: (n) => pool.acquire(n) });
      else asm!.push(m.chunk);
    }
    pool.release(asm!.finish());
    return { accepted: true, receivedUpdates: 1 };
  }),
});
const grpcAddress = await grpc.listen('127.0.0.1:0');
const tcp = net.createServer((sock) => {
  let n = 0;
  let want = -1;
  sock.on('data', (d) => {
    if (want < 0) want = d.readUInt32LE(0) * 1024 * 1024;
    n += d.length;
    if (n >= want + 4) sock.end('k');
  });
});
await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
process.stdout.write(JSON.stringify({ grpc: grpcAddress, tcp: (tcp.address() as net.AddressInfo).port }) + '\n');
