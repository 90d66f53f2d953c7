/**
 * How a node stays known to the coordinator: register, heartbeat at the interval the
 * coordinator asks for, and register again when the coordinator has forgotten the node
 * (NOT_FOUND, e.g. after a restart) or was unreachable. Retries back off exponentially.
 */
import { status } from '@grpc/grpc-js';
import { CoordinatorClient, type CallOptions, type CoordinatorStub, type HeartbeatResponse, type ShardFault, callUnary, makeClient, hasStatus } from '../wire/index.js';
import { type Logger, sleep } from '../util/index.js';

/** Options of {@link keepRegistered}. */
export interface KeepRegisteredOptions<R> {
  coordinator: string;
  nodeId: string;
  /** Registers with the coordinator (RegisterTrainer or RegisterDataset) and resolves with the answer. */
  register: (client: CoordinatorStub, options: CallOptions) => Promise<R>;
  log: Logger;
  signal: AbortSignal;
  /** Reused client; one is made when absent. */
  client?: CoordinatorStub;
  /** The task to report in heartbeats (trainers). */
  currentTask?: () => string;
  onRegistered?: (res: R) => void;
  /** Shard faults to report with the next heartbeat (taken; put back if the heartbeat fails). */
  takeShardFaults?: () => ShardFault[];
  returnShardFaults?: (faults: ShardFault[]) => void;
  /** Called with each heartbeat answer and the task id the heartbeat was about. */
  onHeartbeat?: (res: HeartbeatResponse, taskId: string) => void;
  /** Per-call deadline. */
  timeoutMs?: number;
}

/** Runs until `signal` aborts. */
export async function keepRegistered<R extends { heartbeatIntervalMs: number }>(options: KeepRegisteredOptions<R>): Promise<void> {
  const { log, signal } = options;
  const client = options.client ?? makeClient(CoordinatorClient, options.coordinator);
  const timeoutMs = options.timeoutMs ?? 5_000;
  let backoff = 250;
  try {
    while (!signal.aborted) {
      let interval: number;
      try {
        const res = await options.register(client, { timeoutMs, signal });
        interval = Math.max(100, res.heartbeatIntervalMs || 1_000);
        options.onRegistered?.(res);
        log.info('registered', { coordinator: options.coordinator });
        backoff = 250;
      } catch (err) {
        if (signal.aborted) return;
        log.warn('register failed; retrying', { coordinator: options.coordinator, error: (err as Error).message, retryMs: backoff });
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 5_000);
        continue;
      }
      // Heartbeat until the coordinator forgets us or stops answering.
      while (!signal.aborted) {
        await sleep(interval, signal);
        if (signal.aborted) return;
        const faults = options.takeShardFaults?.() ?? [];
        try {
          const taskId = options.currentTask?.() ?? '';
          const res = await callUnary(client, 'Heartbeat', { nodeId: options.nodeId, taskId, shardFaults: faults }, { timeoutMs, signal });
          options.onHeartbeat?.(res, taskId);
        } catch (err) {
          options.returnShardFaults?.(faults);
          if (signal.aborted) return;
          if (hasStatus(err, status.NOT_FOUND)) {
            log.warn('coordinator forgot this node; registering again');
            break;
          }
          log.warn('heartbeat failed', { error: (err as Error).message });
          if (hasStatus(err, status.UNAVAILABLE)) {
            await sleep(backoff, signal);
            backoff = Math.min(backoff * 2, 5_000);
            break;
          }
        }
      }
    }
  } finally {
    if (!options.client) client.close();
  }
}
