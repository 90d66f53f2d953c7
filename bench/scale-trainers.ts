/**
 * The simulated trainers of `npm run bench:scale`: `--count` trainers in this one process, each
 * a real trainer node (registration, heartbeats, long polls, SecAgg+ key stages, masking,
 * uploads and unmasking over gRPC) whose update is made up instead of trained, so that what is
 * measured is the coordinator. They share one mask thread pool. Prints one JSON line once all
 * are registered; stops on SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startTrainer, type TrainerNode } from '../trainer-node/main.js';
import { loadTrainerConfig } from '../trainer-node/config.js';
import { MaskPool } from '../src/secagg/index.js';
import { Random } from '../src/util/index.js';

const { values } = parseArgs({ options: {
  coordinator: { type: 'string' }, from: { type: 'string', default: '0' }, count: { type: 'string', default: '25' }, log: { type: 'string', default: '' },
} });
const from = Number(values.from), count = Number(values.count);
const pool = new MaskPool();
const rng = new Random(`scale-${from}`);
// Small updates around zero: one random vector made once, copied, each copy with an entry of
// its own (making a million random numbers per trainer would hold this process's event loop).
let base = new Float32Array(0);
const update = (numParams: number) => {
  if (base.length !== numParams) base = Float32Array.from({ length: numParams }, () => rng.uniform(-1e-3, 1e-3));
  const d = base.slice();
  d[rng.int(numParams)] = rng.uniform(-1e-3, 1e-3);
  return d;
};
const nodes: TrainerNode[] = [];
for (let i = 0; i < count; i++) {
  nodes.push(await startTrainer(loadTrainerConfig([
    '--coordinator', values.coordinator!, '--node-id', `sim-${String(from + i).padStart(5, '0')}`, '--backend', 'cpu', '--metrics-port', '-1',
    '--capacity', '1000', '--log-level', process.env.AQ_TRAINER_LOG_LEVEL ?? 'warn', ...(values.log ? ['--log-file', values.log] : []), '--wait-ms', '10000',
  ], {}), { syntheticUpdate: update, maskPool: pool, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }));
}
console.log(JSON.stringify({ started: count }));
process.on('SIGTERM', () => {
  void Promise.allSettled(nodes.map((n) => n.close())).then(() => process.exit(0));
});
