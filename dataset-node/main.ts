/**
 * Dataset node process: open (or generate) the shard store, serve it over gRPC, register with
 * the coordinator (or, with --chain, with every validator of the subnet that announces an
 * endpoint) and keep each registration alive with heartbeats. Leases signed by any of them are
 * honoured.
 */
import { roleLogger, nodeIdentity, keepRegistered, ValidatorWatch } from '../src/node/index.js';
import { callUnary, checkLeaseKey, ensureCanListen, leaseCryptoReady, RequestVerifier, serveHealthAndReflection, serveIdentity, signedService, toServiceError, makeClient, CoordinatorClient, type RegisterDatasetResponse, createGrpcServer, serverCredentials, useTlsForClients, datasetService } from '../src/wire/index.js';
import { datasetMetrics, serveMetrics, fmt, type StatusDocument } from '../src/metrics/index.js';
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
  await ensureCanListen('listen', given.listen);
  const { nodeId, signer } = await nodeIdentity(given.hotkey, given.nodeId, given.nodeId);
  const config = { ...given, nodeId };
  await leaseCryptoReady();
  // The keys leases must be signed with: pinned by a flag, or the one each coordinator names.
  const leaseKeys = new Map<string, string>();
  if (config.coordinatorKey) leaseKeys.set('pinned', config.coordinatorKey);
  const log = roleLogger(`dataset.${config.nodeId}`, config);
  useTlsForClients(config.tlsCa);
  const stop = new AbortController();
  const store = await openShardStore({
    dir: config.dataDir, task: config.task, seed: config.seed, shards: config.shards,
    samplesPerShard: config.samplesPerShard, alpha: config.alpha, log, signal: stop.signal,
    ...(config.coco ? { coco: { annotations: config.coco, images: config.cocoImages || undefined } } : {}),
    ...(config.images ? { images: { dir: config.images, teacher: config.teacher, threshold: config.labelThreshold } } : {}),
  });
  const metrics = datasetMetrics();
  let closing = false;
  const grpc = createGrpcServer();
  const impl = datasetServiceImpl({
    nodeId: config.nodeId, store, chunkBytes: config.chunkBytes, metrics, log, closing: () => closing, leaseKeys: () => new Set(leaseKeys.values()),
  });
  if (config.signed) {
    // The lease binds a request to a trainer; the signature proves the caller is that trainer.
    const signed = signedService(datasetService, impl, new RequestVerifier({ audience: signer?.address, maxSkewMs: config.maxSkewMs }), () => 'trainer', (err, m) => toServiceError(err, log, m));
    grpc.server.addService(signed.definition, signed.impl);
  } else {
    grpc.server.addService(datasetService, impl);
  }
  // A node without a hotkey names none: requests to it are bound to it by the lease, which names the node.
  serveIdentity(grpc.server, log, signer?.address ?? '', 'dataset');
  // The shards were opened and verified above: ready.
  const health = serveHealthAndReflection(grpc.server, ['actiquest.v1.Dataset']);
  health.set('SERVING');
  const address = await grpc.listen(config.listen, serverCredentials(config.tlsCert, config.tlsKey));
  // The status page: the validators this node serves, its score at each, its shards.
  let served: () => [string, { label: string; score: number | null }][] = () => [];
  const statusPage = (): StatusDocument => ({
    role: 'dataset', id: config.nodeId, updatedAt: new Date().toISOString(),
    facts: [['node', config.nodeId], ['task', store.task], ['shards', String(store.shards.length)], ['samples', String(store.shards.reduce((n, x) => n + x.numSamples, 0))]],
    tables: [
      { id: 'validators', title: 'Validators', columns: ['validator', 'address', 'score'], rows: served().map(([address, c]) => [c.label, address, c.score === null ? '' : fmt(c.score)]) },
      { id: 'shards', title: 'Shards', columns: ['shard', 'samples', 'sha256'], rows: store.shards.map((x) => [x.shardId, x.numSamples, `${x.sha256.slice(0, 16)}...`]) },
    ],
  });
  const metricsServer = config.metricsPort >= 0 ? await serveMetrics(metrics.registry, config.metricsHost, config.metricsPort, statusPage) : null;
  const advertise = config.advertise || address;
  log.info('listening', { grpc: address, advertise, metrics: metricsServer?.address ?? null, shards: store.shards.length });
  /** Registers with the coordinator at `address` (signing for `hotkey`, else the one it names) and heartbeats until closed. */
  const register = (address: string, label: string, hotkey: string | null) => {
    const own = new AbortController();
    const client = makeClient(CoordinatorClient, address, undefined, signer, hotkey);
    const scoring = setInterval(() => {
      callUnary(client, 'GetScore', { nodeId: config.nodeId }, { timeoutMs: 5_000 }).then((r) => { entry.score = r.score; }, () => {});
    }, 10_000);
    scoring.unref();
    const done = keepRegistered({
      coordinator: address, log, signal: AbortSignal.any([stop.signal, own.signal]), nodeId: config.nodeId, client,
      onRegistered: (res: RegisterDatasetResponse) => {
        if (config.coordinatorKey && res.leaseKey !== config.coordinatorKey) {
          log.error('the coordinator signs leases with a key other than --coordinator-key; its leases will be refused', { coordinator: label, pinned: config.coordinatorKey, named: res.leaseKey });
        } else if (!config.coordinatorKey && res.leaseKey) {
          leaseKeys.set(address, checkLeaseKey(res.leaseKey));
        }
      },
      register: (c, options) => callUnary(c, 'RegisterDataset', { nodeId: config.nodeId, address: advertise, task: store.task, shards: [...store.shards] }, options),
    });
    const entry = {
      label,
      /** This node's score there (GetScore every 10 s), for the status page. */
      score: null as number | null,
      async close() {
        clearInterval(scoring);
        own.abort();
        await done.catch(() => undefined);
        client.close();
        leaseKeys.delete(address);
      },
    };
    return entry;
  };
  const coordinators = new Map<string, ReturnType<typeof register>>();
  served = () => [...coordinators];
  if (config.coordinator) coordinators.set(config.coordinator, register(config.coordinator, config.coordinator, null));
  const watch = config.discovery ? new ValidatorWatch({
    url: config.discovery.url, netuid: config.discovery.netuid, pin: config.discovery.pin, exclude: config.discovery.exclude,
    refreshMs: config.discovery.refreshMs, log, self: config.nodeId,
    onChange: (validators) => {
      const wanted = new Map(validators.map((v) => [v.address, v.hotkey]));
      for (const [address, c] of coordinators) {
        if (wanted.get(address) === c.label) continue;
        log.warn('validator dropped', { hotkey: c.label, address });
        coordinators.delete(address);
        void c.close();
      }
      for (const v of validators) {
        if (coordinators.has(v.address)) continue;
        log.info('serving validator', { hotkey: v.hotkey, address: v.address });
        coordinators.set(v.address, register(v.address, v.hotkey, v.hotkey));
      }
    },
  }) : null;
  watch?.start();
  return {
    address,
    metricsAddress: metricsServer?.address ?? null,
    async close() {
      closing = true;
      health.stopping();
      stop.abort();
      await watch?.close();
      await Promise.allSettled([...coordinators.values()].map((c) => c.close()));
      await grpc.close();
      await metricsServer?.close();
      log.info('stopped');
    },
  };
}
