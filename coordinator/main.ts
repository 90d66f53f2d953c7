/**
 * Coordinator process: the gRPC services (trainers' and dataset nodes' `Coordinator`,
 * researchers' `Jobs`), the jobs' round loops (jobs.ts), metrics, weights on chain, and the
 * output folder (the durable store and checkpoints, store.ts; each job's round history after
 * every round; its model as TF.js files with a model card when it is done). Started again on
 * the same folder, it continues every unfinished job from its last completed round.
 */
import { coordinatorStatus } from './status.js';
import { roleLogger, AllowlistAdmission, AnyAdmission, MetagraphAdmission } from '../src/node/index.js';
import path from 'node:path';
import { lineSink, writeJsonFile } from '../src/util/index.js';
import { CallLimiter, createGrpcServer, coordinatorService, ensureCanListen, jobsService, RequestVerifier, serveHealthAndReflection, serveIdentity, type Health, signedService, toServiceError, serverCredentials } from '../src/wire/index.js';
import { loadKeyringPair, loadSigner, WeightsLoop, type Publication, type WeightsStatus } from '../src/chain/index.js';
import { coordinatorMetrics, serveMetrics } from '../src/metrics/index.js';
import { NodeRegistry, type DatasetRecord } from '../src/rounds/index.js';
import { MaskPool, SumStorage } from '../src/secagg/index.js';
import { coordinatorRole, coordinatorServiceImpl } from './service.js';
import { UploadSpool } from './spool.js';
import type { handleClientStreamingCall, handleServerStreamingCall, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { DataPlane } from './data-plane.js';
import { ConfigError } from '../src/errors.js';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { type JobRunner, type JobState, JobManager, NodeLedger } from '../src/jobs/index.js';
import { jobsServiceImpl } from './jobs-service.js';
import type { Scoreboard } from '../src/scoring/index.js';
import type { CoordinatorConfig } from './config.js';
import { CoordinatorStore } from '../src/store/index.js';

/** A running coordinator. */
export interface Coordinator {
  address: string;
  /** Where the data plane takes updates (null: `--data-listen off`, they come to `address`). */
  dataAddress: string | null;
  metricsAddress: string | null;
  /** SS58 address of the key that signs shard leases. */
  leaseKey: string;
  /** The built-in job (the one the flags describe); throws when it runs none (--job false). */
  job: JobRunner;
  /** Every job: the built-in one and the submitted ones. */
  jobs: JobManager;
  /** The last weights set on chain (null without --chain or before the first). */
  lastPublication(): Publication | null;
  /** Every publication of this run. */
  publications(): readonly Publication[];
  /** The weights loop's state (null without --chain). */
  weightsStatus(): WeightsStatus | null;
  /** Publishes the final scores as soon as the chain allows (with --chain; bounded by --final-weights-wait-s). */
  flushWeights(): Promise<void>;
  /** Resolves with the built-in job's final state (its model is written by then). */
  done: Promise<JobState>;
  close(): Promise<void>;
}

/** Options beside the config (for embedding and tests). */
export interface CoordinatorHooks {
  progress?: (line: string) => void;
  onUpdateBytes?: (taskId: string, bytes: Buffer, numSamples: number) => void;
  onBeforeUnmask?: (groupId: string, maskedSum: Uint32Array) => void;
}


/**
 * Without a chain: the weights the coordinator would set, with local uids (trainers, then
 * dataset nodes, each sorted by id), the scores behind them and their parts.
 */
export function weightsReport(scoreboard: Scoreboard, rounds: number) {
  const scores = scoreboard.all();
  const ordered = [...scores].sort((a, b) => (a.role === b.role ? a.nodeId.localeCompare(b.nodeId) : a.role === 'trainer' ? -1 : 1));
  const uids = new Map(ordered.map((s, i) => [s.nodeId, i]));
  const w = scoreboard.weights(uids, { maxWeightsLimit: 65535, minAllowedWeights: 0 });
  const byUid = new Map(w.uids.map((u, i) => [u, w.values[i]!]));
  return {
    chain: null,
    note: 'no chain configured: the weights the coordinator would set, with local uids',
    rounds,
    uids: w.uids,
    values: w.values,
    nodes: ordered.map((s) => ({ uid: uids.get(s.nodeId)!, u16: byUid.get(uids.get(s.nodeId)!) ?? 0, ...s })),
  };
}

/** Starts the coordinator, its built-in job and the stored jobs it had not finished. */
export async function startCoordinator(config: CoordinatorConfig, hooks: CoordinatorHooks = {}): Promise<Coordinator> {
  // Before anything is opened: a busy port leaves no store behind.
  await ensureCanListen('listen', config.listen);
  if (config.metricsPort > 0) await ensureCanListen('metrics-port', `${config.metricsHost}:${config.metricsPort}`);
  if (config.dataListen && !config.dataListen.endsWith(':0')) await ensureCanListen('data-listen', config.dataListen);
  const log = roleLogger('coordinator', config);
  const allowlist = config.auth?.allowlist ? new AllowlistAdmission(config.auth.allowlist) : null;
  const stdout = lineSink(1);
  const progress = hooks.progress ?? ((line: string) => stdout(`${line}\n`));
  const metrics = coordinatorMetrics();
  const registry = new NodeRegistry(config.liveTimeoutMs);
  const datasets = new Map<string, DatasetRecord>();
  const liveDatasets = () => [...datasets.values()].filter((d) => Date.now() - d.lastSeenMs <= config.liveTimeoutMs);
  const maskPool = new MaskPool(config.limits.maskThreads);
  const store = new CoordinatorStore(config.out);
  const ledger = new NodeLedger(registry, liveDatasets);
  // Nodes' records and the ledger from before a restart (the scores are rebuilt from the rounds).
  registry.restore(store.nodes<Parameters<NodeRegistry['restore']>[0][number]>().filter((n) => n.role === 'trainer').map((n) => n.record));
  const savedLedger = store.getState<ReturnType<NodeLedger['snapshot']>>('ledger');
  if (savedLedger) ledger.restore(savedLedger);
  // Shard leases are signed with the validator hotkey when there is one, else a key of this run
  // (dataset nodes learn it when they register, again after a restart).
  const leaseSigner = await loadSigner(config.leaseKeyUri ? { uri: config.leaseKeyUri } : config.chain ? config.chain.hotkey : { uri: `0x${randomBytes(32).toString('hex')}` });
  let roundsDone = 0;
  metrics.liveTrainers.count = () => registry.liveCount();
  metrics.jobStates.count = () => {
    const n: Record<string, number> = {};
    for (const j of jobs.list()) n[jobs.stateOf(j)] = (n[jobs.stateOf(j)] ?? 0) + 1;
    return n;
  };
  // Each node's share of the last weights set (the status page): by uid, mapped to node ids by
  // the metagraph with a chain, by the local uids of weights.json without.
  let lastWeights = new Map<string, number>();
  let hotkeyOfUid = new Map<number, string>();
  const shares = (uids: readonly number[], values: readonly number[], nodeOf: (uid: number) => string | undefined) => {
    const total = values.reduce((a, b) => a + b, 0) || 1;
    return new Map(uids.flatMap((u, i) => {
      const node = nodeOf(u);
      return node === undefined ? [] : [[node, values[i]! / total] as const];
    }));
  };
  const jobs = new JobManager({
    maskPool, sumStorage: new SumStorage(path.join(config.out, 'sums'), config.limits.sumBytes), store, ledger, out: config.out, budget: config.budget, modelMemoryBytes: config.modelMemoryBytes, modelBackend: config.modelBackend, maxActiveJobs: config.maxActiveJobs, leaseSigner,
    registry, datasets: liveDatasets, metrics, log, progress, onBeforeUnmask: hooks.onBeforeUnmask,
    onRound: async (): Promise<void> => {
      roundsDone = jobs.list().reduce((n, j) => n + jobs.historyOf(j).length, 0);
      store.saveNodes(registry.snapshot().map((record) => ({ nodeId: record.nodeId, role: 'trainer', record })));
      store.setState('ledger', ledger.snapshot());
      // With a chain, weights go out on their own loop (below); without, each round's report.
      if (chain) return;
      const report = weightsReport(ledger.scoreboard, roundsDone);
      await writeJsonFile(path.join(config.out, 'weights.json'), report);
      store.addWeights({ atMs: Date.now(), rounds: roundsDone, block: null, mode: 'local', uids: report.uids, values: report.values, scores: report.nodes });
      const nodeOfUid = new Map(report.nodes.map((n) => [n.uid, n.nodeId]));
      lastWeights = shares(report.uids, report.values, (u) => nodeOfUid.get(u));
    },
  });
  let builtin: Awaited<ReturnType<JobManager['start']>> | null = null;
  try {
    if (config.job) builtin = await jobs.start(config.job, { builtin: true });
    await jobs.resume();
  } catch (err) {
    await jobs.close();
    store.close();
    await maskPool.close();
    throw err;
  }
  // Signed requests: admitted by the allowlist and, with a chain, by the subnet's metagraph.
  const metagraph = config.auth && config.chain ? new MetagraphAdmission(config.chain.netuid) : null;
  let lastPublication: Publication | null = null;
  let health: Health | null = null;
  const publications: Publication[] = [];
  let weightsFile: Promise<void> = Promise.resolve();
  const chain = config.chain ? new WeightsLoop({
    url: config.chain.url, netuid: config.chain.netuid, signer: await loadKeyringPair(config.chain.hotkey), log: log.child('chain'),
    pendingCommitsFile: path.join(config.out, 'pending-commits.json'), pollMs: config.chain.pollMs, mode: config.chain.mode,
    blockTimeSeconds: config.chain.blockTimeSeconds,
    scores: () => new Map(ledger.scoreboard.all().map((s) => [s.nodeId, s.score])),
    onMetagraph: (mg) => {
      hotkeyOfUid = new Map(mg.neurons.map((n) => [n.uid, n.hotkey]));
      metagraph?.update(mg.neurons.map((n) => n.hotkey), mg.block);
    },
    onStatus: (st) => {
      metrics.chainConnected.set(st.connected ? 1 : 0);
      health?.set(st.connected && !closing ? 'SERVING' : 'NOT_SERVING');
      metrics.weightsMode.reset();
      if (st.mode) metrics.weightsMode.set({ mode: st.mode }, 1);
    },
    onPublication: (p) => {
      metrics.weightsPublications.inc({ mode: p.mode });
      metrics.weightsLastBlock.set(p.block);
      lastPublication = p;
      publications.push(p);
      const c = config.chain!;
      const scores = ledger.scoreboard.all();
      store.addWeights({ atMs: Date.now(), rounds: roundsDone, block: p.block, mode: p.mode, uids: p.uids, values: p.values, scores });
      lastWeights = shares(p.uids, p.values, (u) => hotkeyOfUid.get(u));
      // One write at a time, in order: the file ends as the last publication.
      const report = {
        chain: { url: c.url, netuid: c.netuid, hotkey: chain!.hotkey, uid: chain!.status().uid }, mode: p.mode, block: p.block, rounds: roundsDone,
        uids: p.uids, values: p.values, ...(p.revealRound !== undefined ? { revealRound: p.revealRound } : {}), unmapped: p.unmapped, nodes: scores,
      };
      weightsFile = weightsFile.then(() => writeJsonFile(path.join(config.out, 'weights.json'), report))
        .catch((err: Error) => log.warn('weights.json not written', { error: err.message }));
      const verb = p.mode === 'set' ? 'set' : 'committed';
      progress(`weights ${verb} (${p.mode}) on subnet ${c.netuid} at block ${p.block}: ${p.uids.length} uids${p.unmapped.length ? ` (${p.unmapped.length} scored nodes have no uid)` : ''}${p.revealRound ? `; the chain reveals them at drand round ${p.revealRound}` : ''}${p.revealed ? `; ${p.revealed} earlier commit(s) revealed` : ''}`);
    },
  }) : null;
  chain?.start();
  const parts = [allowlist, metagraph].filter((p): p is AllowlistAdmission | MetagraphAdmission => p !== null);
  // Who this coordinator is to clients that sign: its validator hotkey on a chain, else its lease key.
  const identity = config.chain && config.leaseKeyUri ? (await loadSigner(config.chain.hotkey)).address : leaseSigner.address;
  const verifier = config.auth ? new RequestVerifier({ audience: identity, maxSkewMs: config.auth.maxSkewMs, admission: parts.length ? new AnyAdmission(parts) : undefined }) : null;
  if (config.auth && parts.length === 0) log.warn('signed requests without --allowlist or --chain: every valid signature is admitted');
  if (!config.auth && !/^(127\.|localhost:|\[::1\])/.test(config.listen)) log.warn('listening beyond loopback with --auth open: anyone who reaches this port may register nodes and submit jobs');
  let closing = false;
  let closed: Promise<void> | null = null;
  const lim = config.limits;
  const grpc = createGrpcServer({
    maxStreamsPerConnection: lim.maxStreamsPerConnection, log,
    streamLimits: { connectionBytes: lim.bufferedBytesPerConnection, totalBytes: lim.bufferedBytes, messageMs: lim.messageDeadlineMs },
  });
  const limiter = new CallLimiter(lim.maxCallsPerNode);
  /** Adds a service (signed when requests must be); returns the handlers as served. */
  const serve = (definition: ServiceDefinition, impl: UntypedServiceImplementation, roleOf: (method: string) => string): UntypedServiceImplementation => {
    if (!verifier) {
      grpc.server.addService(definition, impl);
      return impl;
    }
    const signed = signedService(definition, impl, verifier, roleOf, (err, method) => toServiceError(err, log, method), limiter);
    grpc.server.addService(signed.definition, signed.impl);
    return signed.impl;
  };
  let dataPlane: DataPlane | null = null;
  const served = serve(coordinatorService, coordinatorServiceImpl({
    jobs, ledger, leaseKey: leaseSigner.address, registry, datasets, metrics, log, heartbeatIntervalMs: config.heartbeatIntervalMs,
    liveTimeoutMs: config.liveTimeoutMs, closing: () => closing, dataPort: () => dataPlane?.port ?? 0, onUpdateBytes: hooks.onUpdateBytes, weightsStatus: () => chain?.status() ?? null,
    uploads: { maxBytes: lim.uploadBytes, idleMs: lim.uploadIdleMs, spool: new UploadSpool(path.join(config.out, 'uploads'), lim.spoolMemoryBytes) },
  }), coordinatorRole);
  serve(jobsService, jobsServiceImpl({ jobs, log, closing: () => closing }), () => 'researcher');
  serveIdentity(grpc.server, log, identity, 'coordinator');
  // Ready (overall SERVING) once the store is open and, with --chain, while the chain is connected.
  health = serveHealthAndReflection(grpc.server, ['actiquest.v1.Coordinator', 'actiquest.v1.Jobs']);
  health.set(!chain || chain.status().connected ? 'SERVING' : 'NOT_SERVING');
  const address = await grpc.listen(config.listen, serverCredentials(config.tlsCert, config.tlsKey));
  if (config.dataListen) {
    try {
      dataPlane = await DataPlane.start({
        listen: config.dataListen, tlsCert: config.tlsCert, tlsKey: config.tlsKey, identity, log: { logLevel: config.logLevel, logFile: config.logFile, logFormat: config.logFormat },
        limits: { maxStreamsPerConnection: lim.maxStreamsPerConnection, bufferedBytes: lim.bufferedBytes, bufferedBytesPerConnection: lim.bufferedBytesPerConnection, messageDeadlineMs: lim.messageDeadlineMs },
      }, {
        SubmitUpdate: served.SubmitUpdate as handleClientStreamingCall<unknown, unknown>,
        FetchGlobalModel: served.FetchGlobalModel as handleServerStreamingCall<unknown, unknown>,
      }, log.child('data-plane'));
    } catch (err) {
      await grpc.close();
      await jobs.close();
      store.close();
      await maskPool.close();
      await chain?.close();
      throw new ConfigError('data-listen', 'an address this process can listen on (or off)', `${config.dataListen}: ${(err as Error).message}`);
    }
  }
  if (chain) {
    // The endpoint trainers find on chain: --announce, else the listen address when it is routable.
    const [host, port] = [address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, ''), Number(address.slice(address.lastIndexOf(':') + 1))];
    const endpoint = config.chain!.announce ?? (isIP(host) && !['0.0.0.0', '::', '127.0.0.1', '::1'].includes(host) ? { host, port } : null);
    if (endpoint) chain.announceEndpoint(endpoint.host, endpoint.port);
    else log.warn('no endpoint announced on chain: trainers that discover validators will not find this one; give --announce IP:port', { listen: address });
  }
  const status = () => coordinatorStatus({ id: identity, jobs, registry, ledger, datasets, weightsStatus: () => chain?.status() ?? null, weightsHistory: () => store.weightsHistory(10), lastWeights: () => lastWeights });
  const metricsServer = config.metricsPort >= 0 ? await serveMetrics(metrics.registry, config.metricsHost, config.metricsPort, status) : null;
  log.info('listening', { grpc: address, data: dataPlane?.address ?? null, metrics: metricsServer?.address ?? null, jobs: jobs.list().map((j) => j.config.jobId) });
  const done = !builtin ? new Promise<JobState>(() => {}) : builtin.done.then((state: JobState) => {
    const runner = builtin.runner!;
    if (state === 'DONE') {
      if (!chain) {
        const report = weightsReport(ledger.scoreboard, roundsDone);
        progress(`weights it would set (no chain configured; local uids): ${report.nodes.map((n) => `${n.nodeId}=${n.u16}`).join(' ') || 'none yet'}`);
      }
      const last = runner.history.at(-1);
      progress(`job ${builtin.config.jobId} done: final val ${runner.task.metricName} ${((last?.valAccuracy ?? 0) * 100).toFixed(1)}%; model written to ${path.join(builtin.dir, 'model')}`);
    }
    log.info('job finished', { jobId: builtin.config.jobId, state });
    return state;
  });
  return {
    address,
    dataAddress: dataPlane?.address ?? null,
    metricsAddress: metricsServer?.address ?? null,
    leaseKey: leaseSigner.address,
    get job(): JobRunner {
      if (!builtin?.runner) throw new Error('this coordinator runs no built-in job (--job false)');
      return builtin.runner;
    },
    jobs,
    lastPublication: () => lastPublication,
    publications: () => publications,
    weightsStatus: () => chain?.status() ?? null,
    async flushWeights() {
      if (!chain || config.chain!.finalWaitMs === 0) return;
      progress(`publishing the final scores on subnet ${config.chain!.netuid} (waiting up to ${Math.round(config.chain!.finalWaitMs / 1000)} s for the rate limit)`);
      await chain.flush(config.chain!.finalWaitMs);
    },
    done,
    close() {
      closed ??= shutdown();
      return closed;
    },
  };
  async function shutdown(): Promise<void> {
    {
      closing = true;
      health?.stopping();
      await jobs.close();
      await dataPlane?.close();
      await grpc.close();
      await metricsServer?.close();
      await maskPool.close();
      await chain?.close();
      await weightsFile;
      store.close();
      log.info('stopped');
    }
  }
}
