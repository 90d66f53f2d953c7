/**
 * Dataset node process: open (or generate) the shard store, serve it over gRPC, register with
 * the coordinator and keep the registration alive with heartbeats.
 */
import { createLogger } from '../src/util/log.js';
import { createGrpcServer } from '../src/wire/server.js';
import { serverCredentials, useTlsForClients } from '../src/wire/tls.js';
import { datasetService } from '../src/wire/proto.js';
import { datasetMetrics, serveMetrics } from '../src/metrics/index.js';
import { openShardStore } from './shard-store.js';
import { datasetServiceImpl } from './service.js';
import { keepRegistered } from '../src/node/registration.js';
import type { DatasetConfig } from './config.js';

/** A running dataset node. */
export interface DatasetNode {
  address: string;
  metricsAddress: string | null;
  close(): Promise<void>;
}

/** Starts a dataset node with `config`. */
export async function startDatasetNode(config: DatasetConfig): Promise<DatasetNode> {
  const log = createLogger(`dataset.${config.nodeId}`, { level: config.logLevel });
  useTlsForClients(config.tlsCa);
  const stop = new AbortController();
  const store = await openShardStore({
    dir: config.dataDir, task: config.task, seed: config.seed, shards: config.shards,
    samplesPerShard: config.samplesPerShard, alpha: config.alpha, log, signal: stop.signal,
    ...(config.coco ? { coco: { annotations: config.coco, images: config.cocoImages || undefined } } : {}),
  });
  const metrics = datasetMetrics();
  let closing = false;
  const grpc = createGrpcServer();
  grpc.server.addService(datasetService, datasetServiceImpl({
    nodeId: config.nodeId, store, chunkBytes: config.chunkBytes, metrics, log, closing: () => closing,
  }));
  const address = await grpc.listen(config.listen, serverCredentials(config.tlsCert, config.tlsKey));
  const metricsServer = config.metricsPort >= 0 ? await serveMetrics(metrics.registry, config.metricsHost, config.metricsPort) : null;
  const advertise = config.advertise || address;
  log.info('listening', { grpc: address, advertise, metrics: metricsServer?.address ?? null, shards: store.shards.length });
  const registration = config.coordinator
    ? keepRegistered({
      coordinator: config.coordinator, log, signal: stop.signal, nodeId: config.nodeId,
      register: { method: 'RegisterDataset', request: { nodeId: config.nodeId, address: advertise, task: store.task, shards: store.shards } },
    })
    : Promise.resolve();
  return {
    address,
    metricsAddress: metricsServer?.address ?? null,
    async close() {
      closing = true;
      stop.abort();
      await registration.catch(() => {});
      await grpc.close();
      await metricsServer?.close();
      log.info('stopped');
    },
  };
}
