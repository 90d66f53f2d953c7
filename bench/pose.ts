/**
 * `npm run bench:pose`: does federated training of the pose task reach what plain centralised
 * training of the same model on the same data reaches? Both runs in one process, same seeds:
 *
 * - federated: a coordinator with the pose task's defaults (secure aggregation on), two
 *   dataset nodes (two sites, non-IID) and five trainers, each its own process, over gRPC on
 *   loopback;
 * - centralised: the same model spec and initial weights, trained on the union of the very
 *   shards the dataset nodes served, for as many passes over the data as the federation made
 *   (rounds x local epochs), same batch size, optimizer and learning rate;
 *
 * both evaluated on the coordinator's validation set after each round / equivalent epochs.
 * Prints PCK@0.2 and the mean keypoint error side by side, and the federated/centralised
 * ratio of the final PCK (the aim: at least 0.9). Options: --rounds 4 --local-epochs 5
 * --shards 8 --samples-per-shard 64 --trainers 5 --strategy fedavg --server-lr 0 --lr 0 (the
 * local learning rate of both sides; 0: the pose task's default, as a job that names none).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadCoordinatorConfig } from '../coordinator/config.js';
import { startCoordinator } from '../coordinator/main.js';
import { spawnRole } from '../bin/demo.js';
import type { ChildProcess } from 'node:child_process';
import { selectBackend, buildModel, evaluate, trainLocal, type Dataset } from '../src/model/index.js';
import { getTask } from '../src/tasks/index.js';

/** `AQ_CPU_PROF_DIR`: every process spawned writes a CPU profile there. */
const PROF = { cpuProfDir: process.env.AQ_CPU_PROF_DIR };

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    'local-epochs': { type: 'string', default: '5' },
    shards: { type: 'string', default: '8' },
    'samples-per-shard': { type: 'string', default: '64' },
    trainers: { type: 'string', default: '5' },
    strategy: { type: 'string', default: 'fedavg' },
    'server-lr': { type: 'string', default: '0' },
    lr: { type: 'string', default: '0' },
  },
});
const rounds = Number(values.rounds), localEpochs = Number(values['local-epochs']);
const shards = Number(values.shards), perShard = Number(values['samples-per-shard']);
const SITES = ['gym', 'clinic'];
const task = getTask('pose');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-bench-pose-'));
const quiet = ['--metrics-port', '-1', '--log-level', process.env.AQ_LOG_LEVEL ?? 'error'];

await selectBackend('wasm');
fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
console.log(`\n== pose: federated (${values.trainers} trainers, 2 sites, secure aggregation) against centralised, same model, data and passes`);
const started = performance.now();
const coordinator = await startCoordinator(loadCoordinatorConfig([
  '--task', 'pose', '--rounds', String(rounds), '--local-epochs', String(localEpochs), '--cohort', values.trainers, '--min-trainers', values.trainers,
  '--strategy', values.strategy, '--server-lr', values['server-lr'], '--lr', values.lr, '--round-timeout', '900', '--validation-seed', 'bench-pose', '--validation-samples', '256', '--listen', '127.0.0.1:0', '--out', path.join(dir, 'out'), '--exit-when-done', ...quiet,
], {}), { progress: () => {} });
const job = coordinator.job;
const cfg = job.config;
const children: ChildProcess[] = [];
for (const seed of SITES) {
  children.push(spawnRole(['dataset', '--task', 'pose', '--coordinator', coordinator.address, '--seed', seed, '--shards', String(shards),
    '--samples-per-shard', String(perShard), '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), ...quiet], path.join(dir, `${seed}.log`), PROF));
}
for (let i = 0; i < Number(values.trainers); i++) {
  children.push(spawnRole(['trainer', '--coordinator', coordinator.address, '--node-id', `t${i}`, '--backend', 'wasm', '--threads', '1', ...quiet], path.join(dir, `t${i}.log`), PROF));
}
await coordinator.done;
const fedSeconds = (performance.now() - started) / 1000;
const federated = job.history.map((r) => ({ pck: r.valAccuracy, loss: r.valLoss, error: r.valMeanError ?? NaN }));
for (const child of children) child.kill('SIGTERM');

// Centralised: the shards the dataset nodes generated (deterministic in seed and index), the
// coordinator's validation set, the coordinator's initial model.
const parts = SITES.flatMap((seed) => Array.from({ length: shards }, (_, i) => task.generateShard({ seed, shards, samplesPerShard: perShard, alpha: 1 }, i)));
const count = parts.reduce((n, p) => n + p.count, 0);
const cat = (k: 'x' | 'keypoints') => {
  const out = new Float32Array(parts.reduce((n, p) => n + p[k]!.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p[k]!, o);
    o += p[k]!.length;
  }
  return out;
};
const data: Dataset = { count, features: cat('x'), labels: new Uint8Array(count), keypoints: cat('keypoints') };
const v = task.generateValidation('bench-pose', 256);
const val: Dataset = { count: v.count, features: v.x, labels: v.y, keypoints: v.keypoints };
const model = buildModel(cfg.model, task.inputShape, task.head, cfg.modelSeed);
const central: { pck: number; loss: number; error: number }[] = [];
const t0 = performance.now();
for (let r = 0; r < rounds; r++) {
  await trainLocal(model, data, { epochs: localEpochs, batchSize: cfg.batchSize, learningRate: cfg.learningRate, optimizer: cfg.optimizer, head: task.head, seed: r });
  const ev = await evaluate(model, val, task.head);
  central.push({ pck: ev.accuracy, loss: ev.loss, error: ev.meanError! });
}
const centralSeconds = (performance.now() - t0) / 1000;
await coordinator.close();
fs.rmSync(dir, { recursive: true, force: true });

console.log(`  ${count} images, ${JSON.stringify(cfg.model)}, batch ${cfg.batchSize}, ${cfg.optimizer} lr ${cfg.learningRate}, ${cfg.strategy}${cfg.serverLearningRate ? ` server lr ${cfg.serverLearningRate}` : ''}`);
console.log('  round (passes)  federated: PCK@0.2  val loss  mean error   centralised: PCK@0.2  val loss  mean error');
for (let r = 0; r < rounds; r++) {
  const f = federated[r], c = central[r]!;
  const fed = f ? `${(f.pck * 100).toFixed(1).padStart(17)}%  ${f.loss.toFixed(4).padStart(8)}  ${(f.error * 64).toFixed(2).padStart(7)} px` : `${'-'.padStart(18)}  ${'-'.padStart(8)}  ${'-'.padStart(10)}`;
  console.log(`  ${String(r + 1).padStart(5)} (${String((r + 1) * localEpochs).padStart(3)})  ${fed}  ${(c.pck * 100).toFixed(1).padStart(19)}%  ${c.loss.toFixed(4).padStart(8)}  ${(c.error * 64).toFixed(2).padStart(7)} px`);
}
const fFinal = federated.at(-1)?.pck ?? 0, cFinal = central.at(-1)!.pck;
console.log(`  final PCK@0.2: federated ${(fFinal * 100).toFixed(1)}%, centralised ${(cFinal * 100).toFixed(1)}%, ratio ${(fFinal / cFinal).toFixed(2)} (aim >= 0.90); ${fedSeconds.toFixed(0)} s federated, ${centralSeconds.toFixed(0)} s centralised`);
process.exit(0);
