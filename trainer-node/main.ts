/**
 * Trainer process: pick a backend, register and heartbeat, then ask for tasks and run them one
 * at a time. A heartbeat answer that the task is no longer wanted (round closed) aborts training
 * at the next batch; a lost coordinator is retried with back-off and the trainer registers again.
 */
import { roleLogger, keepRegistered, nodeIdentity } from '../src/node/index.js';
import { status } from '@grpc/grpc-js';
import { sleep } from '../src/util/index.js';
import { configureBackends, selectBackend } from '../src/model/index.js';
import { trainerMetrics, serveMetrics } from '../src/metrics/index.js';
import { callUnary, makeClient, useTlsForClients, hasStatus, CoordinatorClient, type GetTaskResponse, type RegisterTrainerResponse } from '../src/wire/index.js';
import { TaskRunner } from './task-runner.js';
import { generateIdentity } from '../src/crypto/index.js';
import type { TrainerConfig } from './config.js';

/** A running trainer. */
export interface TrainerNode {
  nodeId: string;
  backend: string;
  metricsAddress: string | null;
  close(): Promise<void>;
}

/** Hooks for embedding and tests. */
export interface TrainerHooks {
  onQuantized?: (taskId: string, q: Uint32Array) => void;
}

/** Starts a trainer with `config`. */
export async function startTrainer(given: TrainerConfig, hooks: TrainerHooks = {}): Promise<TrainerNode> {
  useTlsForClients(given.tlsCa);
  const { nodeId, signer } = await nodeIdentity(given.hotkey, given.nodeId, given.nodeId);
  const config = { ...given, nodeId };
  const log = roleLogger(`trainer.${config.nodeId}`, config);
  configureBackends({ webGpuSoftware: config.webGpuSoftware });
  const backend = await selectBackend(config.backend);
  const metrics = trainerMetrics();
  const metricsServer = config.metricsPort >= 0 ? await serveMetrics(metrics.registry, config.metricsHost, config.metricsPort) : null;
  log.info('started', { backend: backend.backend, device: backend.device, coordinator: config.coordinator, metrics: metricsServer?.address ?? null });
  const stop = new AbortController();
  const coordinator = makeClient(CoordinatorClient, config.coordinator, undefined, signer);
  // Signs this node's secure-aggregation keys. Ephemeral for now: chain hotkeys replace it.
  const identity = generateIdentity();
  const runner = new TaskRunner({ nodeId: config.nodeId, coordinator, signer, metrics, log, delayPerBatchMs: config.delayPerBatchMs, identity, onQuantized: hooks.onQuantized });
  let currentTask = '';
  let taskAbort: AbortController | null = null;
  let registered = false;
  let submitted = false;

  const registration = keepRegistered<RegisterTrainerResponse>({
    coordinator: config.coordinator, nodeId: config.nodeId, client: coordinator, log, signal: stop.signal,
    register: (client, options) => callUnary(client, 'RegisterTrainer', {
      nodeId: config.nodeId, capacity: { samplesPerSecond: config.capacity, backend: backend.backend, device: backend.device },
      version: '0.1.0', identityKey: identity.publicKey,
    }, options),
    currentTask: () => currentTask,
    takeShardFaults: () => runner.shardFaults.splice(0),
    returnShardFaults: (faults) => runner.shardFaults.push(...faults),
    onRegistered: () => { registered = true; },
    onHeartbeat: (res, aboutTask) => {
      // Only an answer about the task in hand counts (an answer about the previous one can arrive
      // after the next began). Once the update is in, a secure task still owes its unmask answer.
      if (currentTask && aboutTask === currentTask && !submitted && !res.taskActive && taskAbort && !taskAbort.signal.aborted) {
        log.info('task no longer wanted; stopping', { taskId: currentTask });
        taskAbort.abort(new Error('round closed'));
      }
    },
  });

  const loop = (async () => {
    let backoff = 250;
    while (!stop.signal.aborted) {
      if (!registered) {
        await sleep(100, stop.signal);
        continue;
      }
      let res: GetTaskResponse;
      try {
        res = await callUnary(coordinator, 'GetTask', { nodeId: config.nodeId, waitMs: config.waitMs }, { timeoutMs: config.waitMs + 5_000, signal: stop.signal });
        backoff = 250;
      } catch (err) {
        if (stop.signal.aborted) break;
        if (hasStatus(err, status.NOT_FOUND)) registered = false;
        log.warn('task request failed', { error: (err as Error).message, retryMs: backoff });
        await sleep(backoff, stop.signal);
        backoff = Math.min(backoff * 2, 5_000);
        continue;
      }
      if (res.result !== 'task' || !res.task) {
        await sleep(res.retryAfterMs ?? 500, stop.signal);
        continue;
      }
      const task = res.task;
      currentTask = task.taskId;
      taskAbort = new AbortController();
      const onStop = () => taskAbort?.abort(new Error('trainer stopping'));
      stop.signal.addEventListener('abort', onStop, { once: true });
      const timer = setTimeout(() => taskAbort?.abort(new Error('deadline passed')), Math.max(0, task.deadlineUnixMs - Date.now()));
      submitted = false;
      try {
        const out = await runner.run(task, taskAbort.signal, () => { submitted = true; clearTimeout(timer); }, stop.signal);
        metrics.tasksTotal.inc({ result: 'submitted' });
        log.info('update submitted', { round: task.round, accepted: out.accepted, receivedUpdates: out.receivedUpdates });
      } catch (err) {
        const aborted = taskAbort.signal.aborted;
        metrics.tasksTotal.inc({ result: aborted ? 'cancelled' : 'failed' });
        if (aborted) log.info('task stopped', { round: task.round, reason: (taskAbort.signal.reason as Error)?.message });
        else {
          log.warn('task failed', { round: task.round, error: (err as Error).message });
          await sleep(500, stop.signal);
        }
      } finally {
        clearTimeout(timer);
        stop.signal.removeEventListener('abort', onStop);
        currentTask = '';
        taskAbort = null;
      }
    }
  })();

  return {
    nodeId: config.nodeId,
    backend: backend.backend,
    metricsAddress: metricsServer?.address ?? null,
    async close() {
      stop.abort();
      await Promise.allSettled([loop, registration]);
      runner.close();
      coordinator.close();
      await metricsServer?.close();
      log.info('stopped');
    },
  };
}
