/**
 * The coordinator's status page document (src/metrics/status-page.ts): its jobs with their
 * metric curve and current phase, trainers and dataset nodes with their scores and their share
 * of the last weights set, the weights history and the chain's status.
 */
import { fmt, type StatusDocument } from '../src/metrics/index.js';
import type { JobManager, NodeLedger } from '../src/jobs/index.js';
import type { NodeRegistry, DatasetRecord } from '../src/rounds/index.js';
import type { WeightsStatus } from '../src/chain/index.js';
import type { StoredWeights } from '../src/store/index.js';
import { getTask } from '../src/tasks/index.js';

export interface CoordinatorStatusDeps {
  id: string;
  jobs: JobManager;
  registry: NodeRegistry;
  ledger: NodeLedger;
  datasets: Map<string, DatasetRecord>;
  weightsStatus: () => WeightsStatus | null;
  /** The last weight settings (ten are shown), oldest first. */
  weightsHistory: () => StoredWeights[];
  /** Each node's share of the last weights set (absent: none set for it yet). */
  lastWeights: () => ReadonlyMap<string, number>;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export function coordinatorStatus(d: CoordinatorStatusDeps): StatusDocument {
  const chain = d.weightsStatus();
  const scores = d.ledger.scoreboard.all();
  const last = d.lastWeights();
  const row = (s: (typeof scores)[number]) => {
    const w = last.get(s.nodeId);
    return [fmt(s.score), fmt(s.quality), fmt(s.reliability), pct(s.onTime), pct(s.uptime), fmt(s.throughput, 2), w === undefined ? '' : pct(w)];
  };
  const history = d.weightsHistory().slice(-10).reverse();
  return {
    role: 'coordinator',
    id: d.id,
    updatedAt: new Date().toISOString(),
    facts: [
      ['hotkey', d.id],
      ['live trainers', String(d.registry.live().length)],
      ['dataset nodes', String(d.datasets.size)],
      ['chain', chain ? `${chain.connected ? 'connected' : 'not connected'}${chain.mode ? `, ${chain.mode}` : ''}${chain.uid !== null ? `, uid ${chain.uid}` : ''}${chain.waiting ? `; ${chain.waiting}` : ''}` : 'none (weights go to weights.json)'],
    ],
    jobs: d.jobs.list().map((j) => {
      const rounds = d.jobs.historyOf(j);
      return {
        jobId: j.config.jobId, task: j.config.task, state: d.jobs.stateOf(j), roundsDone: rounds.length, roundsTotal: j.config.rounds,
        phase: j.runner?.current?.phase ?? 'NONE', metric: `validation ${getTask(j.config.task).metricName}`,
        curve: rounds.map((r) => ({ round: r.round, value: r.valAccuracy })),
      };
    }),
    tables: [
      {
        id: 'trainers', title: 'Trainers', columns: ['node', 'live', 'score', 'quality', 'reliability', 'on time', 'uptime', 'throughput', 'last weight'],
        rows: scores.filter((s) => s.role === 'trainer').map((s) => [s.nodeId, d.registry.isLive(s.nodeId) ? 'yes' : 'no', ...row(s)]),
      },
      {
        id: 'datasets', title: 'Dataset nodes', columns: ['node', 'shards', 'score', 'quality', 'reliability', 'on time', 'uptime', 'throughput', 'last weight'],
        rows: scores.filter((s) => s.role === 'dataset').map((s) => [s.nodeId, d.datasets.get(s.nodeId)?.shards.length ?? 0, ...row(s)]),
      },
      {
        id: 'weights', title: 'Weights (last 10)', columns: ['time', 'rounds', 'block', 'mode', 'uids'],
        rows: history.map((h) => [new Date(h.atMs).toISOString(), h.rounds, h.block ?? '', h.mode, h.uids.length]),
      },
    ],
  };
}
