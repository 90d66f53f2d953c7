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

/** Failed registrations in a row before the log says what to check (and every this many after). */
export const HINT_AFTER_FAILURES = 5;

/** A gRPC error's message without grpc-js's empty trailer ("Resolution note: "). */
export function errorText(err: unknown): string {
  return ((err as Error)?.message ?? String(err)).replace(/\s*Resolution note:\s*$/, '');
}

/** What a person should check when registering with the coordinator at `address` keeps failing with `err`. */
export function connectionHint(err: unknown, address: string): string {
  const text = errorText(err);
  if (/certificate|SSL|TLS|handshake/i.test(text)) return `the TLS handshake with ${address} fails: if the coordinator uses TLS, give its CA with --tls-ca; if it does not, drop --tls-ca`;
  if (hasStatus(err, status.UNAUTHENTICATED)) return `${address} takes signed requests only: give this node a hotkey (--wallet.name and --wallet.hotkey, --hotkey-file, or AQ_HOTKEY_URI)`;
  if (hasStatus(err, status.PERMISSION_DENIED)) return `${address} does not admit this hotkey: ask its operator to allowlist it, or register it on the subnet`;
  if (hasStatus(err, status.DEADLINE_EXCEEDED)) return `${address} does not answer: a firewall dropping packets, the wrong host, or an overloaded coordinator`;
  if (hasStatus(err, status.UNAVAILABLE)) {
    if (/ECONNREFUSED/.test(text)) return `nothing listens at ${address}: check the host and port (--coordinator), and that the coordinator runs`;
    if (/ENOTFOUND|EAI_AGAIN|DNS/i.test(text)) return `the host of ${address} does not resolve: check its name`;
    return `${address} is unreachable (${text}): check the address, that the coordinator runs, and the network between`;
  }
  return `registering keeps failing (${text})`;
}

/** Runs until `signal` aborts. */
export async function keepRegistered<R extends { heartbeatIntervalMs: number }>(options: KeepRegisteredOptions<R>): Promise<void> {
  const { log, signal } = options;
  const client = options.client ?? makeClient(CoordinatorClient, options.coordinator);
  const timeoutMs = options.timeoutMs ?? 5_000;
  let backoff = 250;
  let failures = 0;
  try {
    while (!signal.aborted) {
      let interval: number;
      try {
        const res = await options.register(client, { timeoutMs, signal });
        interval = Math.max(100, res.heartbeatIntervalMs || 1_000);
        options.onRegistered?.(res);
        log.info('registered', { coordinator: options.coordinator });
        backoff = 250;
        failures = 0;
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        log.warn('register failed; retrying', { coordinator: options.coordinator, error: errorText(err), retryMs: backoff });
        if (failures % 20 === HINT_AFTER_FAILURES % 20) {
          log.error('cannot register with the coordinator', { coordinator: options.coordinator, failures, hint: connectionHint(err, options.coordinator) });
        }
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
          log.warn('heartbeat failed', { error: errorText(err) });
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
