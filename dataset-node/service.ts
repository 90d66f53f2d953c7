/** The Dataset gRPC service: the manifest, and shards streamed as header + chunks. */
import { serverStream, unary, encodeBlob, type GetManifestResponse, type StreamShardRequest, type BlobPart, checkLease, callerOf, type DatasetHandlers } from '../src/wire/index.js';
import { InvalidFieldError, ShuttingDownError } from '../src/errors.js';
import type { ShardStore } from './shard-store.js';
import type { DatasetMetrics } from '../src/metrics/index.js';
import type { Logger } from '../src/util/index.js';

/** What the service needs. */
export interface DatasetServiceDeps {
  nodeId: string;
  store: ShardStore;
  chunkBytes: number;
  metrics: DatasetMetrics;
  log: Logger;
  /** True once shutdown began: new streams are refused with UNAVAILABLE. */
  closing: () => boolean;
  /** The coordinator's lease key ('' until known). */
  /** The lease keys of the coordinators this node serves. */
  leaseKeys: () => ReadonlySet<string>;
}

/** Builds the handlers of `actiquest.v1.Dataset`. */
export function datasetServiceImpl(deps: DatasetServiceDeps): DatasetHandlers {
  const { log, store, metrics } = deps;
  return {
    GetManifest: unary(log, 'GetManifest', (): GetManifestResponse => ({
      nodeId: deps.nodeId, task: store.task, shards: [...store.shards],
    })),
    StreamShard: serverStream<StreamShardRequest, BlobPart>(log, 'StreamShard', async (req, send, signal) => {
      if (deps.closing()) throw new ShuttingDownError('dataset node');
      if (!req.shardId) throw new InvalidFieldError('shard_id', 'a shard id from the manifest', 'an empty string');
      checkLease(req.lease, { datasetNodeId: deps.nodeId, coordinatorKeys: deps.leaseKeys(), shardId: req.shardId, caller: callerOf(req) });
      const bytes = await store.read(req.shardId);
      const { header, chunks } = encodeBlob(bytes, deps.chunkBytes);
      // A download cut off goes on where it stopped: the header, then the chunks it lacks.
      if (req.fromChunk > chunks.length) throw new InvalidFieldError('from_chunk', `a chunk index from 0 to ${chunks.length} (the shard is ${chunks.length} chunks)`, String(req.fromChunk));
      await send({ part: 'header', header });
      let sent = 0;
      for (const chunk of chunks.slice(req.fromChunk)) {
        if (signal.aborted) return;
        await send({ part: 'chunk', chunk });
        sent += chunk.data.length;
      }
      const info = store.shards.find((s) => s.shardId === req.shardId);
      metrics.shardsServed.inc();
      metrics.samplesServed.inc(info?.numSamples ?? 0);
      metrics.sentBytes.inc(sent);
    }),
  };
}
