/**
 * Prometheus metrics (prom-client): one registry a process. The process and Node.js metrics
 * keep their standard names (`process_*`, `nodejs_*`), which dashboards and alerts look for;
 * the project's are `actiquest_*` in snake_case with base-unit suffixes, counters ending in
 * `_total`, labels only of few values: a job's series carry `job_id` (Prometheus sets `job`
 * itself), never a node id, so a series count stays bounded by jobs and not by miners.
 * `promtool check metrics` passes on every role (test/metrics.test.ts). `serveMetrics` exposes
 * a registry over HTTP at `/metrics`.
 */
import http from 'node:http';
import { STATUS_HTML, type StatusDocument } from './status-page.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Reasons an update can be rejected (a closed set, so it can be a label). */
export const REJECT_REASONS = ['invalid_argument', 'failed_precondition', 'not_found', 'resource_exhausted', 'other'] as const;

function registry(role: string): Registry {
  const r = new Registry();
  r.setDefaultLabels({ role });
  collectDefaultMetrics({ register: r });
  // prom-client's gauges of active handles, requests and resources end in `_total`, which
  // Prometheus reserves for counters (promtool refuses them); their per-type gauges
  // (`nodejs_active_handles{type}` and the others) stay, and sum to the same.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) r.removeSingleMetric(name);
  return r;
}

/** The coordinator's metrics. */
export function coordinatorMetrics() {
  const r = registry('coordinator');
  // Read at each scrape: the coordinator sets where the jobs are counted from.
  const jobStates = { count: (): Record<string, number> => ({}) };
  const liveTrainers = { count: (): number => 0 };
  // Counted at each scrape, not at each heartbeat: with a thousand trainers, a count at every
  // heartbeat costs a thousand records a call, and the gauge went stale once heartbeats stopped.
  new Gauge({
    name: 'actiquest_live_trainers', help: 'Trainers with a recent heartbeat', registers: [r],
    collect() {
      this.set(liveTrainers.count());
    },
  });
  return {
    jobStates,
    registry: r,
    roundsTotal: new Counter({ name: 'actiquest_rounds_total', help: 'Rounds finished, by job and result', labelNames: ['job_id', 'result'] as const, registers: [r] }),
    roundDuration: new Histogram({
      name: 'actiquest_round_duration_seconds', help: 'Wall time of a round from selection to evaluation, by job', labelNames: ['job_id'] as const,
      buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600], registers: [r],
    }),
    roundPhaseSeconds: new Histogram({
      name: 'actiquest_round_phase_seconds', help: 'Time of each phase of a completed round (gradient, plan, collect, evaluate, aggregate, validate, checkpoint), by job', labelNames: ['job_id', 'phase'] as const,
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers: [r],
    }),
    receivedBytes: new Counter({ name: 'actiquest_received_bytes_total', help: 'Update bytes received', registers: [r] }),
    sentBytes: new Counter({ name: 'actiquest_sent_bytes_total', help: 'Model bytes sent', registers: [r] }),
    updatesAccepted: new Counter({ name: 'actiquest_updates_accepted_total', help: 'Updates accepted into a round, by job', labelNames: ['job_id'] as const, registers: [r] }),
    updatesRejected: new Counter({ name: 'actiquest_updates_rejected_total', help: 'Updates refused, by reason', labelNames: ['reason'] as const, registers: [r] }),
    liveTrainers,
    roundPhase: new Gauge({
      name: 'actiquest_round_phase', help: 'Phase a job\'s round is in: 1 for the phase under way, 0 for the others (waiting: for trainers before a round is planned), by job', labelNames: ['job_id', 'phase'] as const, registers: [r],
    }),
    currentRound: new Gauge({ name: 'actiquest_round', help: 'Round in progress (or next), by job', labelNames: ['job_id'] as const, registers: [r] }),
    validationAccuracy: new Gauge({ name: 'actiquest_validation_accuracy_ratio', help: 'Validation metric of the latest global model (accuracy, or PCK@0.2 for keypoints), by job', labelNames: ['job_id'] as const, registers: [r] }),
    validationLoss: new Gauge({ name: 'actiquest_validation_loss', help: 'Validation loss of the latest global model, by job', labelNames: ['job_id'] as const, registers: [r] }),
    jobs: new Gauge({
      name: 'actiquest_jobs', help: 'Jobs known to the coordinator, by state', labelNames: ['state'] as const, registers: [r],
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(jobStates.count())) this.set({ state }, n);
      },
    }),
    weightsPublications: new Counter({ name: 'actiquest_weights_publications_total', help: 'Weight settings and commits included on chain, by mode (set, crv2, crv3, crv4)', labelNames: ['mode'] as const, registers: [r] }),
    weightsMode: new Gauge({ name: 'actiquest_weights_mode', help: 'How weights go on chain: 1 for the mode in use (set, crv2, crv3, crv4)', labelNames: ['mode'] as const, registers: [r] }),
    weightsLastBlock: new Gauge({ name: 'actiquest_weights_last_block', help: 'Block that included the last weight setting or commit', registers: [r] }),
    chainConnected: new Gauge({ name: 'actiquest_chain_connected', help: '1 while the weights loop is connected to the chain', registers: [r] }),
  };
}
export type CoordinatorMetrics = ReturnType<typeof coordinatorMetrics>;

/** A trainer's metrics. */
export function trainerMetrics() {
  const r = registry('trainer');
  return {
    registry: r,
    samplesTrained: new Counter({ name: 'actiquest_samples_trained_total', help: 'Samples trained (all epochs)', registers: [r] }),
    tasksTotal: new Counter({ name: 'actiquest_tasks_total', help: 'Tasks finished, by result', labelNames: ['result'] as const, registers: [r] }),
    sentBytes: new Counter({ name: 'actiquest_sent_bytes_total', help: 'Update bytes sent', registers: [r] }),
    roundPhaseSeconds: new Histogram({
      name: 'actiquest_round_phase_seconds', help: 'Time of each phase of a completed round (gradient, plan, collect, evaluate, aggregate, validate, checkpoint), by job', labelNames: ['job_id', 'phase'] as const,
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers: [r],
    }),
    receivedBytes: new Counter({ name: 'actiquest_received_bytes_total', help: 'Model and shard bytes received', registers: [r] }),
    trainSeconds: new Histogram({ name: 'actiquest_train_duration_seconds', help: 'Local training time of a task', buckets: [0.5, 1, 2, 5, 10, 30, 60, 120], registers: [r] }),
  };
}
export type TrainerMetrics = ReturnType<typeof trainerMetrics>;

/** A dataset node's metrics. */
export function datasetMetrics() {
  const r = registry('dataset');
  return {
    registry: r,
    samplesServed: new Counter({ name: 'actiquest_samples_served_total', help: 'Samples in shards served', registers: [r] }),
    shardsServed: new Counter({ name: 'actiquest_shards_served_total', help: 'Shards served', registers: [r] }),
    sentBytes: new Counter({ name: 'actiquest_sent_bytes_total', help: 'Shard bytes sent', registers: [r] }),
  };
}
export type DatasetMetrics = ReturnType<typeof datasetMetrics>;

/** Serves `registry` at `http://host:port/metrics`; resolves with the bound address. */
export async function serveMetrics(registry: Registry, host: string, port: number, status?: () => StatusDocument): Promise<{ address: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    // The status page (status-page.ts): read-only, nothing secret.
    if (status && (req.url === '/' || req.url === '/status')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(STATUS_HTML);
      return;
    }
    if (status && req.url === '/status.json') {
      try {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(status()));
      } catch (err) {
        res.writeHead(500).end((err as Error).message);
      }
      return;
    }
    if (req.url !== '/metrics') {
      res.writeHead(404).end(status ? 'see / (status page), /status.json or /metrics\n' : 'see /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as { port: number };
  return {
    address: `${host}:${addr.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export { STATUS_HTML, fmt, type StatusDocument } from './status-page.js';
