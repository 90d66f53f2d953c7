/**
 * Dataset node process: open (or generate) the shard store, serve it over gRPC, register with
 * the coordinator and keep the registration alive with heartbeats.
 */
import { roleLogger, nodeIdentity, keepRegistered } from '../src/node/index.js';
import { callUnary, checkLeaseKey, leaseCryptoReady, RequestVerifier, signedService, toServiceError, makeClient, CoordinatorClient, type RegisterDatasetResponse, createGrpcServer, serverCredentials, useTlsForClients, datasetService } from '../src/wire/index.js';
import { datasetMetrics, serveMetrics } from '../src/metrics/index.js';
import { openShardStore } from './shard-store.js';
import { datasetServiceImpl } from './service.js';
import type { DatasetConfig } from './config.js';

/** A running dataset node. */
export interface DatasetNode {
  address: string;
  metricsAddress: string | null;
  close(): Promise<void>;
}

/** Starts a dataset node with `config`. */
export async function startDatasetNode(given: DatasetConfig): Promise<DatasetNode> {
  const { nodeId, signer } = await nodeIdentity(given.hotkey, given.nodeId, given.nodeId);
  const config = { ...given, nodeId };
  await leaseCryptoReady();
  // The key leases must be signed with: pinned by a flag, or the one the coordinator names.
  let leaseKey = config.coordinatorKey;
  const log = roleLogger(`dataset.${config.nodeId}`, config);
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
  const impl = datasetServiceImpl({
    nodeId: config.nodeId, store, chunkBytes: config.chunkBytes, metrics, log, closing: () => closing, leaseKey: () => leaseKey,
  });
  if (config.signed) {
    // The lease binds a request to a trainer; the signature proves the caller is that trainer.
    const signed = signedService(datasetService, impl, new RequestVerifier({ maxSkewMs: config.maxSkewMs }), () => 'trainer', (err, m) => toServiceError(err, log, m));
    grpc.server.addService(signed.definition, signed.impl);
  } else {
    grpc.server.addService(datasetService, impl);
  }
  const address = await grpc.listen(config.listen, serverCredentials(config.tlsCert, config.tlsKey));
  const metricsServer = config.metricsPort >= 0 ? await serveMetrics(metrics.registry, config.metricsHost, config.metricsPort) : null;
  const advertise = config.advertise || address;
  log.info('listening', { grpc: address, advertise, metrics: metricsServer?.address ?? null, shards: store.shards.length });
  const coordinatorClient = config.coordinator ? makeClient(CoordinatorClient, config.coordinator, undefined, signer) : null;
  const registration = config.coordinator
    ? keepRegistered({
      coordinator: config.coordinator, log, signal: stop.signal, nodeId: config.nodeId,
      client: coordinatorClient!,
      onRegistered: (res: RegisterDatasetResponse) => {
        if (config.coordinatorKey && res.leaseKey !== config.coordinatorKey) {
          log.error('the coordinator signs leases with a key other than --coordinator-key; its leases will be refused', { pinned: config.coordinatorKey, named: res.leaseKey });
        } else if (!config.coordinatorKey && res.leaseKey) {
          leaseKey = checkLeaseKey(res.leaseKey);
        }
      },
      register: (client, options) => callUnary(client, 'RegisterDataset', { nodeId: config.nodeId, address: advertise, task: store.task, shards: [...store.shards] }, options),
    })
    : Promise.resolve();
  return {
    address,
    metricsAddress: metricsServer?.address ?? null,
    async close() {
      closing = true;
      stop.abort();
      await registration.catch(() => {});
      coordinatorClient?.close();
      await grpc.close();
      await metricsServer?.close();
      log.info('stopped');
    },
  };
}
