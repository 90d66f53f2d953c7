/**
 * Trainer process: pick a backend, register and heartbeat, then ask for tasks and run them one
 * at a time. It works for one coordinator (`--coordinator`, a private federation) or, with
 * `--chain`, for every validator of the subnet that announces an endpoint, each with a share of
 * its capacity in proportion to stake, taking on and dropping validators as the metagraph changes. A heartbeat answer that the task is no longer wanted (round closed) aborts training
 * at the next batch; a lost coordinator is retried with back-off and the trainer registers again.
 */
import { AllowlistAdmission, roleLogger, keepRegistered, nodeIdentity, ValidatorWatch } from '../src/node/index.js';
import { decodeAddress, encodeAddress } from '@polkadot/util-crypto';
import { status, type ChannelOptions } from '@grpc/grpc-js';
import { sleep } from '../src/util/index.js';
import { autoThreads, configureBackends, selectBackend, TrainThreads } from '../src/model/index.js';
import { selfBenchmark } from './self-bench.js';
import { trainerMetrics, serveMetrics, fmt, type StatusDocument } from '../src/metrics/index.js';
import { audienceOf, callUnary, makeClient, useTlsForClients, hasStatus, CoordinatorClient, type GetTaskResponse, type RegisterTrainerResponse } from '../src/wire/index.js';
import { TaskRunner } from './task-runner.js';
import { generateIdentity } from '../src/crypto/index.js';
import type { TrainerConfig } from './config.js';
import type { MaskPool, UnmaskShare } from '../src/secagg/index.js';

/** A running trainer. */
export interface TrainerNode {
  nodeId: string;
  backend: string;
  metricsAddress: string | null;
  /** The coordinators it works for now (one without --chain), and each one's share of its capacity. */
  validators(): { address: string; hotkey: string; share: number }[];
  close(): Promise<void>;
}

/** An SS58 address in the allowlist's form (prefix 42); anything else as it is. */
function canonicalAddress(address: string): string {
  try {
    return encodeAddress(decodeAddress(address), 42);
  } catch {
    return address;
  }
}

/** Work for one coordinator. */
interface Session {
  address: string;
  /** The validator's hotkey (with discovery), else the address. */
  label: string;
  share: number;
  /** Tasks by result, the last round worked, this node's score there (GetScore), samples a second: for the status page. */
  tasks: { submitted: number; failed: number; lastRound: string };
  score: number | null;
  throughput: () => number;
  close(): Promise<void>;
}

/** One task at a time across every coordinator: a FIFO lock. */
class TaskSlot {
  private tail: Promise<void> = Promise.resolve();

  /** Waits for the slot; resolves with its release (calling it again is harmless). */
  async take(): Promise<() => void> {
    let free!: () => void;
    const next = new Promise<void>((r) => (free = r));
    const before = this.tail;
    this.tail = before.then(() => next);
    await before;
    let done = false;
    return () => {
      if (!done) {
        done = true;
        free();
      }
    };
  }
}

/** Hooks for embedding and tests. */
export interface TrainerHooks {
  onQuantized?: (taskId: string, q: Uint32Array) => void;
  /** Replaces each update before it is sent (tests plant free-riders with it). */
  plantUpdate?: (delta: Float32Array) => Float32Array;
  /** Edits each masked input before it is sent (tests plant members that cheat inside a group). */
  plantMasked?: (y: Uint32Array) => void;
  /** Edits the shares revealed at UNMASK before they are sent (tests plant members that corrupt them). */
  plantReveals?: (reveals: UnmaskShare[]) => void;
  /** Makes each update instead of training (bench:scale's simulated trainers). */
  syntheticUpdate?: (numParams: number) => Float32Array;
  /** A mask thread pool shared by the trainers of one process (bench:scale). */
  maskPool?: MaskPool;
  /**
   * Options of the channel to each coordinator: trainers sharing a process (bench:scale) give
   * `grpc.use_local_subchannel_pool` so that each has its own connection, as a trainer process has.
   */
  channelOptions?: ChannelOptions;
}

/** Starts a trainer with `config`. */
export async function startTrainer(given: TrainerConfig, hooks: TrainerHooks = {}): Promise<TrainerNode> {
  useTlsForClients(given.tlsCa);
  const { nodeId, signer } = await nodeIdentity(given.hotkey, given.nodeId, given.nodeId);
  const config = { ...given, nodeId };
  const log = roleLogger(`trainer.${config.nodeId}`, config);
  configureBackends({ webGpuSoftware: config.webGpuSoftware, replaySteps: config.replaySteps });
  const backend = await selectBackend(config.backend);
  // What this machine trains at, for the operator and (unless --capacity names it) the coordinator.
  const speeds = config.capacity > 0 ? [] : await selfBenchmark();
  const capacity = config.capacity > 0 ? config.capacity : Math.max(speeds.find((s) => s.task === 'pose')?.samplesPerSecond ?? 1, 0.001);
  const speedText = speeds.map((s) => `${s.task} ${s.model} ${fmt(s.samplesPerSecond, 0)}/s`).join(', ');
  // On a CPU backend every core trains: threads share each batch where that is faster.
  const cpu = backend.backend === 'wasm' || backend.backend === 'cpu';
  const threadCount = cpu ? config.threads || autoThreads() : 1;
  const trainThreads = threadCount > 1 ? new TrainThreads(threadCount, backend.backend, {
    onVerdict: (v) => log.info(v.shared ? 'training threads share each batch of this model' : 'training threads left idle for this model: one thread was faster', {
      batchSize: v.batchSize, threads: v.threads, samplesPerSecondShared: Math.round(v.sharedPerSecond), samplesPerSecondAlone: Math.round(v.alonePerSecond),
    }),
  }) : null;
  const metrics = trainerMetrics();
  // The status page: this node's validators, tasks, throughput and score at each.
  let sessionsNow: () => Session[] = () => [];
  const statusPage = (): StatusDocument => ({
    role: 'trainer', id: config.nodeId, updatedAt: new Date().toISOString(),
    facts: [['node', config.nodeId], ['backend', `${backend.backend} (${backend.device})`], ['training threads', String(threadCount)], ['speed', speedText || `${fmt(capacity, 0)} samples/s (--capacity)`], ['finds validators', config.discovery ? `on chain, subnet ${config.discovery.netuid}` : config.coordinator]],
    tables: [{
      id: 'validators', title: 'Validators', columns: ['validator', 'address', 'capacity share', 'tasks submitted', 'tasks failed', 'last task', 'samples/s', 'score'],
      rows: sessionsNow().map((s) => [s.label, s.address, fmt(s.share, 2), s.tasks.submitted, s.tasks.failed, s.tasks.lastRound, fmt(s.throughput(), 1), s.score === null ? '' : fmt(s.score)]),
    }],
  });
  const metricsServer = config.metricsPort >= 0 ? await serveMetrics(metrics.registry, config.metricsHost, config.metricsPort, statusPage) : null;
  log.info('started', { backend: backend.backend, device: backend.device, threads: threadCount, ...(speeds.length ? { samplesPerSecond: Object.fromEntries(speeds.map((x) => [x.task, Math.round(x.samplesPerSecond)])) } : {}), capacity: Math.round(capacity), coordinator: config.coordinator || null, chain: config.discovery?.url ?? null, metrics: metricsServer?.address ?? null });
  const stop = new AbortController();
  // Signs this node's secure-aggregation keys. Ephemeral for now: chain hotkeys replace it.
  const identity = generateIdentity();
  // One task at a time, whichever validator it is for.
  const slot = new TaskSlot();
  const sessions = new Map<string, Session>();
  sessionsNow = () => [...sessions.values()];
  // Who may be a peer in a secure group: a hotkey registered on the subnet (with --chain, once
  // read) or listed in --peer-allowlist; either admits. Neither configured: any hotkey.
  let subnetHotkeys: ReadonlySet<string> | null = null;
  const peerAllowlist = config.peerAllowlist ? new AllowlistAdmission(config.peerAllowlist) : null;
  const admitPeer = config.discovery || peerAllowlist ? (peer: string): boolean => {
    if (config.discovery && (subnetHotkeys === null || subnetHotkeys.has(peer))) return true;
    return peerAllowlist !== null && peerAllowlist.admits(canonicalAddress(peer), 'trainer');
  } : null;

  /**
   * Works for the coordinator at `address` with `share` of this trainer's capacity until closed;
   * requests are signed for `hotkey` (a validator found on chain), else for the one it names.
   */
  const startSession = (address: string, share: number, label: string, hotkey: string | null): Session => {
    const own = new AbortController();
    const signal = AbortSignal.any([stop.signal, own.signal]);
    const coordinator = makeClient(CoordinatorClient, address, undefined, signer, hotkey, hooks.channelOptions);
    // Whether the coordinator admits each upload before its chunks (learned at registration).
    let uploadAdmission = false;
    // The coordinator's data plane (its port named at registration, on the host reached here).
    // Made again when the port or the coordinator's hotkey (learned at registration) changes.
    let data: { key: string; client: InstanceType<typeof CoordinatorClient> } | null = null;
    const useDataPort = (port: number) => {
      const audience = audienceOf(coordinator) ?? hotkey;
      const key = `${port}/${audience}`;
      if ((data?.key ?? '0/') === key || (port === 0 && data === null)) return;
      data?.client.close();
      data = port > 0 ? { key, client: makeClient(CoordinatorClient, `${address.slice(0, address.lastIndexOf(':'))}:${port}`, undefined, signer, audience, hooks.channelOptions) } : null;
      if (port > 0) log.info('the model and updates go through the coordinator\'s data plane', { coordinator: label, port });
    };
    const runner = new TaskRunner({
      nodeId: config.nodeId, coordinator, uploadAdmission: () => uploadAdmission, dataPlane: () => data?.client ?? coordinator, signer, metrics, log, delayPerBatchMs: config.delayPerBatchMs, identity, onQuantized: hooks.onQuantized, plantUpdate: hooks.plantUpdate, plantMasked: hooks.plantMasked, plantReveals: hooks.plantReveals,
      ...(admitPeer ? { admitPeer } : {}),
      ...(hooks.syntheticUpdate ? { syntheticUpdate: hooks.syntheticUpdate } : {}),
      ...(hooks.maskPool ? { maskPool: hooks.maskPool } : {}),
      ...(trainThreads ? { trainThreads } : {}),
    });
    const session: Session = { address, label, share, tasks: { submitted: 0, failed: 0, lastRound: '' }, score: null, throughput: () => runner.lastSamplesPerSecond, close: () => Promise.resolve() };
    let currentTask = '';
    let taskAbort: AbortController | null = null;
    let registered = false;
    let submitted = false;
    const registration = keepRegistered<RegisterTrainerResponse>({
      coordinator: address, nodeId: config.nodeId, client: coordinator, log, signal,
      register: (client, options) => callUnary(client, 'RegisterTrainer', {
        nodeId: config.nodeId, capacity: { samplesPerSecond: capacity * session.share, backend: backend.backend, device: backend.device },
        version: '0.1.0', identityKey: identity.publicKey,
      }, options),
      currentTask: () => currentTask,
      takeShardFaults: () => runner.shardFaults.splice(0),
      returnShardFaults: (faults) => runner.shardFaults.push(...faults),
      onRegistered: (res) => {
        uploadAdmission = res.uploadAdmission;
        useDataPort(res.dataPort);
        registered = true;
      },
      onHeartbeat: (res, aboutTask) => {
        // Only an answer about the task in hand counts (an answer about the previous one can arrive
        // after the next began). Once the update is in, a secure task still owes its unmask answer.
        if (currentTask && aboutTask === currentTask && !submitted && !res.taskActive && taskAbort && !taskAbort.signal.aborted) {
          log.info('task no longer wanted; stopping', { taskId: currentTask, coordinator: label });
          taskAbort.abort(new Error('round closed'));
        }
      },
    });
    const loop = (async () => {
      let backoff = 250;
      while (!signal.aborted) {
        if (!registered) {
          await sleep(100, signal);
          continue;
        }
        const release = await slot.take();
        try {
          if (signal.aborted) break;
          // Beside other validators a request waits less, so that none holds the slot long.
          const waitMs = sessions.size > 1 ? Math.min(config.waitMs, 1000) : config.waitMs;
          let res: GetTaskResponse;
          try {
            res = await callUnary(coordinator, 'GetTask', { nodeId: config.nodeId, waitMs }, { timeoutMs: waitMs + 5_000, signal });
            backoff = 250;
          } catch (err) {
            if (signal.aborted) break;
            if (hasStatus(err, status.NOT_FOUND)) registered = false;
            log.warn('task request failed', { coordinator: label, error: (err as Error).message, retryMs: backoff });
            release();
            await sleep(backoff, signal);
            backoff = Math.min(backoff * 2, 5_000);
            continue;
          }
          if (res.result !== 'task' || !res.task) {
            release();
            await sleep(sessions.size > 1 ? Math.min(res.retryAfterMs ?? 500, 500) : res.retryAfterMs ?? 500, signal);
            continue;
          }
          const task = res.task;
          currentTask = task.taskId;
          taskAbort = new AbortController();
          const onStop = () => taskAbort?.abort(new Error('trainer stopping'));
          signal.addEventListener('abort', onStop, { once: true });
          const timer = setTimeout(() => taskAbort?.abort(new Error('deadline passed')), Math.max(0, task.deadlineUnixMs - Date.now()));
          submitted = false;
          try {
            const out = await runner.run(task, taskAbort.signal, () => { submitted = true; clearTimeout(timer); }, signal);
            metrics.tasksTotal.inc({ result: 'submitted' });
            session.tasks.submitted += 1;
            session.tasks.lastRound = `${task.jobId} round ${task.round}`;
            log.info('update submitted', { coordinator: label, round: task.round, accepted: out.accepted, receivedUpdates: out.receivedUpdates });
            // This node's score there, for the status page (none until a round scored it).
            callUnary(coordinator, 'GetScore', { nodeId: config.nodeId }, { timeoutMs: 5_000 }).then((s) => { session.score = s.score; }, () => {});
          } catch (err) {
            const aborted = taskAbort.signal.aborted;
            metrics.tasksTotal.inc({ result: aborted ? 'cancelled' : 'failed' });
            if (!aborted) session.tasks.failed += 1;
            if (aborted) log.info('task stopped', { coordinator: label, round: task.round, reason: (taskAbort.signal.reason as Error)?.message });
            else {
              log.warn('task failed', { coordinator: label, round: task.round, error: (err as Error).message });
              await sleep(500, signal);
            }
          } finally {
            clearTimeout(timer);
            signal.removeEventListener('abort', onStop);
            currentTask = '';
            taskAbort = null;
          }
        } finally {
          release();
        }
      }
    })();
    session.close = async () => {
      own.abort();
      await Promise.allSettled([loop, registration]);
      runner.close();
      coordinator.close();
      data?.client.close();
    };
    return session;
  };

  let watch: ValidatorWatch | null = null;
  if (config.discovery) {
    const d = config.discovery;
    watch = new ValidatorWatch({
      url: d.url, netuid: d.netuid, pin: d.pin, exclude: d.exclude, refreshMs: d.refreshMs, log, self: config.nodeId,
      onNeurons: (hotkeys) => { subnetHotkeys = hotkeys; },
      onChange: (validators) => {
        const wanted = new Map(validators.map((v) => [v.address, v]));
        for (const [address, s] of sessions) {
          if (wanted.get(address)?.hotkey === s.label) continue;
          log.warn('validator dropped', { hotkey: s.label, address });
          sessions.delete(address);
          void s.close();
        }
        for (const v of validators) {
          const s = sessions.get(v.address);
          if (s) {
            s.share = v.share;
            continue;
          }
          log.info('working for validator', { hotkey: v.hotkey, address: v.address, share: v.share });
          sessions.set(v.address, startSession(v.address, v.share, v.hotkey, v.hotkey));
        }
      },
    });
    watch.start();
  } else {
    sessions.set(config.coordinator, startSession(config.coordinator, 1, config.coordinator, null));
  }

  return {
    nodeId: config.nodeId,
    backend: backend.backend,
    metricsAddress: metricsServer?.address ?? null,
    validators: () => [...sessions.values()].map((s) => ({ address: s.address, hotkey: s.label, share: s.share })),
    async close() {
      stop.abort();
      await watch?.close();
      await Promise.allSettled([...sessions.values()].map((s) => s.close()));
      await metricsServer?.close();
      await trainThreads?.close();
      log.info('stopped');
    },
  };
}
