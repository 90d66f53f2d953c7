/**
 * Coordinator process: the gRPC service, the job's round loop, metrics, and the output folder
 * (the durable store and checkpoints, store.ts; round history after every round; the final
 * model as TF.js files when the job is done). Started again on the same folder, it continues
 * the job from its last completed round.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { createLogger } from '../src/util/log.js';
import { createGrpcServer } from '../src/wire/server.js';
import { coordinatorService } from '../src/wire/proto.js';
import { coordinatorMetrics, serveMetrics } from '../src/metrics/index.js';
import { NodeRegistry } from '../src/rounds/node-registry.js';
import { saveModelFiles } from '../src/model/export.js';
import { MaskPool } from '../src/secagg/mask-pool.js';
import { startChainPublisher, type Publication } from './chain-publisher.js';
import { coordinatorServiceImpl } from './service.js';
import { JobRunner, type DatasetRecord, type JobState } from './job-runner.js';
import type { CoordinatorConfig } from './config.js';
import { CoordinatorStore } from './store.js';
import { serverCredentials } from '../src/wire/tls.js';

/** A running coordinator. */
export interface Coordinator {
  address: string;
  metricsAddress: string | null;
  job: JobRunner;
  /** The last weights set on chain (null without --chain or before the first). */
  lastPublication(): Publication | null;
  /** Every publication of this run. */
  publications(): readonly Publication[];
  /** Resolves with the job's final state (the model is written by then). */
  done: Promise<JobState>;
  close(): Promise<void>;
}

/** Options beside the config (for embedding and tests). */
export interface CoordinatorHooks {
  progress?: (line: string) => void;
  onUpdateBytes?: (taskId: string, bytes: Buffer, numSamples: number) => void;
  onBeforeUnmask?: (groupId: string, maskedSum: Uint32Array) => void;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(`${file}.tmp`, JSON.stringify(value, null, 2));
  await fs.rename(`${file}.tmp`, file);
}

/**
 * Without a chain: the weights the coordinator would set, with local uids (trainers, then
 * dataset nodes, each sorted by id), the scores behind them and their parts.
 */
export function weightsReport(job: JobRunner) {
  const scores = job.scoreboard.all();
  const ordered = [...scores].sort((a, b) => (a.role === b.role ? a.nodeId.localeCompare(b.nodeId) : a.role === 'trainer' ? -1 : 1));
  const uids = new Map(ordered.map((s, i) => [s.nodeId, i]));
  const w = job.scoreboard.weights(uids, { maxWeightsLimit: 65535, minAllowedWeights: 0 });
  const byUid = new Map(w.uids.map((u, i) => [u, w.values[i]!]));
  return {
    chain: null,
    note: 'no chain configured: the weights the coordinator would set, with local uids',
    rounds: job.history.length,
    uids: w.uids,
    values: w.values,
    nodes: ordered.map((s) => ({ uid: uids.get(s.nodeId)!, u16: byUid.get(uids.get(s.nodeId)!) ?? 0, ...s })),
  };
}

/** Starts the coordinator and its job. */
export async function startCoordinator(config: CoordinatorConfig, hooks: CoordinatorHooks = {}): Promise<Coordinator> {
  const log = createLogger('coordinator', { level: config.logLevel });
  const progress = hooks.progress ?? ((line: string) => process.stdout.write(`${line}\n`));
  const metrics = coordinatorMetrics();
  const registry = new NodeRegistry(config.liveTimeoutMs);
  const datasets = new Map<string, DatasetRecord>();
  const liveDatasets = () => [...datasets.values()].filter((d) => Date.now() - d.lastSeenMs <= config.liveTimeoutMs);
  const maskPool = new MaskPool();
  const store = new CoordinatorStore(config.out);
  const job: JobRunner = new JobRunner(config.job, {
    maskPool, store,
    registry, datasets: liveDatasets, metrics, log, progress, onBeforeUnmask: hooks.onBeforeUnmask,
    onRound: async (): Promise<void> => {
      await writeJson(path.join(config.out, 'history.json'), { jobId: config.job.jobId, rounds: job.history });
      await writeJson(path.join(config.out, 'weights.json'), weightsReport(job));
      const published = await chain?.publish(job.scoreboard).catch((err: Error) => {
        log.warn('weights not set', { error: err.message });
        return null;
      });
      if (published) {
        lastPublication = published;
        publications.push(published);
        const verb = published.mode === 'commit' ? 'committed' : 'set';
        progress(`weights ${verb} on subnet ${config.chain!.netuid} at block ${published.block}: ${published.uids.length} uids${published.unmapped.length ? ` (${published.unmapped.length} scored nodes have no uid)` : ''}${published.revealed ? `; ${published.revealed} earlier commit(s) revealed` : ''}`);
      }
    },
  });
  try {
    await job.init();
  } catch (err) {
    store.close();
    await maskPool.close();
    throw err;
  }
  const chain = config.chain
    ? await startChainPublisher({ ...config.chain, log: log.child('chain'), pendingCommitsFile: path.join(config.out, 'pending-commits.json') })
    : null;
  let lastPublication: Publication | null = null;
  const publications: Publication[] = [];
  let closing = false;
  const grpc = createGrpcServer();
  grpc.server.addService(coordinatorService, coordinatorServiceImpl({
    job, registry, datasets, metrics, log, heartbeatIntervalMs: config.heartbeatIntervalMs,
    liveTimeoutMs: config.liveTimeoutMs, closing: () => closing, onUpdateBytes: hooks.onUpdateBytes,
  }));
  const address = await grpc.listen(config.listen, serverCredentials(config.tlsCert, config.tlsKey));
  const metricsServer = config.metricsPort >= 0 ? await serveMetrics(metrics.registry, config.metricsHost, config.metricsPort) : null;
  log.info('listening', { grpc: address, metrics: metricsServer?.address ?? null, jobId: config.job.jobId });
  const stop = new AbortController();
  const done = job.run(stop.signal).then(async (state: JobState) => {
    if (state === 'DONE') {
      const dir = path.join(config.out, 'model');
      await saveModelFiles(job.exportModel(), dir);
      const last = job.history[job.history.length - 1];
      await writeJson(path.join(config.out, 'summary.json'), {
        jobId: config.job.jobId, task: job.task.name, state, rounds: job.history.length,
        parameters: job.paramCount, finalValAccuracy: last?.valAccuracy ?? null, finalValLoss: last?.valLoss ?? null,
        classes: job.task.classes, model: dir,
      });
      if (!chain) {
        const report = weightsReport(job);
        progress(`weights it would set (no chain configured; local uids): ${report.nodes.map((n) => `${n.nodeId}=${n.u16}`).join(' ') || 'none yet'}`);
      }
      progress(`job ${config.job.jobId} done: final val ${job.task.metricName} ${((last?.valAccuracy ?? 0) * 100).toFixed(1)}%; model written to ${dir}`);
    }
    log.info('job finished', { jobId: config.job.jobId, state });
    return state;
  });
  return {
    address,
    metricsAddress: metricsServer?.address ?? null,
    job,
    lastPublication: () => lastPublication,
    publications: () => publications,
    done,
    async close() {
      closing = true;
      stop.abort();
      await done.catch(() => {});
      await grpc.close();
      await metricsServer?.close();
      await maskPool.close();
      await chain?.close();
      store.close();
      log.info('stopped');
    },
  };
}
