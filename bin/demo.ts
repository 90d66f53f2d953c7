/**
 * `actiquest demo` (what `npm start` runs): a whole federation on loopback, every role its own
 * process: one coordinator, dataset nodes, trainers. Shows the coordinator's live progress,
 * keeps each process's log under `<out>/logs/`, and ends with a summary and the final model.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { tsxLoaderUrl, parseOptions, type OptionTable } from '../src/util/index.js';
import { getTask, TASK_NAMES } from '../src/tasks/index.js';
import { ConfigError } from '../src/errors.js';

const DEMO_OPTIONS = {
  task: { type: 'string', default: 'exercise', choices: TASK_NAMES, description: 'built-in task the federation learns' },
  trainers: { type: 'number', default: 10, min: 1, max: 200, description: 'trainer processes' },
  datasets: { type: 'number', default: 2, min: 1, max: 50, description: 'dataset node processes (each with its own non-IID class mix)' },
  rounds: { type: 'number', default: 10, min: 1, max: 10_000, description: 'rounds of the job' },
  'min-trainers': { type: 'number', default: 3, min: 1, description: 'updates a round needs' },
  'round-timeout': { type: 'number', default: 60, min: 1, description: 'seconds the TRAIN phase waits' },
  'local-epochs': { type: 'number', default: 5, min: 1, description: 'local epochs a trainer runs per round' },
  lr: { type: 'number', default: 0, min: 0, description: 'local learning rate (adam; 0: the task\'s default)' },
  strategy: { type: 'string', default: 'fedavg', choices: ['fedavg', 'fedadam'], description: 'server strategy' },
  backend: { type: 'string', default: 'auto', choices: ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'], description: 'trainers\' TF.js backend' },
  'secure-aggregation': { type: 'boolean', default: true, description: 'SecAgg+ in groups of 5 (false: plaintext updates)' },
  'dp-noise': { type: 'number', default: 0, min: 0, max: 100, description: 'differential privacy: the noise multiplier of each group sum (0: off; with --clip-norm)' },
  'clip-norm': { type: 'number', default: 0, min: 0, description: 'clip each update to this L2 norm (with --dp-noise: the sensitivity)' },
  'cpu-prof-dir': { type: 'string', default: '', env: 'AQ_CPU_PROF_DIR', description: 'folder where every process writes a CPU profile (node --cpu-prof) when it exits' },
  out: { type: 'string', default: 'out/demo', description: 'output folder: model/, history.json, summary.json, logs/' },
} as const satisfies OptionTable;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'actiquest.ts');

/**
 * Starts `actiquest <args>` as a child process with tsx, its stderr (its log) into `logFile`;
 * with `cpuProfDir`, the process writes a CPU profile there when it exits (`node --cpu-prof`).
 */
export function spawnRole(args: string[], logFile: string, options: { cpuProfDir?: string; wrapper?: string[]; nodeArgs?: string[]; script?: string } = {}): ChildProcess {
  const prof = [...(options.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir] : []), ...(options.nodeArgs ?? [])];
  // `wrapper`: a command that runs the role (nsenter into a namespace, say); `script`: another entry than `actiquest` (test fixtures).
  const [cmd, ...pre] = [...(options.wrapper ?? []), process.execPath];
  const child = spawn(cmd, [...pre, ...prof, '--import', tsxLoaderUrl(), options.script ?? BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const log = fs.createWriteStream(logFile);
  child.stderr.pipe(log);
  return child;
}

/** Resolves with the first `listening` log event of a child (its addresses). */
export function waitListening(child: ChildProcess, timeoutMs = 60_000): Promise<{ grpc: string; metrics: string | null }> {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stderr! });
    const timer = setTimeout(() => reject(new Error('role did not start in time')), timeoutMs);
    rl.on('line', (line) => {
      try {
        const ev = JSON.parse(line) as { msg?: string; grpc?: string; metrics?: string | null };
        if (ev.msg === 'listening' && ev.grpc) {
          clearTimeout(timer);
          // Closing readline pauses the stream it read: resume it, or nothing drains the
          // child's stderr any more (its log file stops at this line).
          rl.close();
          child.stderr!.resume();
          resolve({ grpc: ev.grpc, metrics: ev.metrics ?? null });
        }
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`role exited with code ${code} before listening`)));
  });
}

/** Runs the demo. */
export async function runDemo(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const o = parseOptions(DEMO_OPTIONS, argv, env, 'actiquest demo [options]', 'Runs a whole local federation: 1 coordinator, dataset nodes and trainers, each a separate process.');
  if (o['secure-aggregation'] && o.trainers < 5) {
    throw new ConfigError('trainers', 'at least 5 with secure aggregation (groups of 5), or --secure-aggregation false', String(o.trainers));
  }
  const out = path.resolve(o.out);
  const prof = { cpuProfDir: o['cpu-prof-dir'] };
  const logs = path.join(out, 'logs');
  // Each demo is a fresh federation: the coordinator's durable state from a previous demo
  // would otherwise resume (and, once done, finish at once).
  for (const f of ['coordinator.db', 'coordinator.db-wal', 'coordinator.db-shm', 'checkpoints']) fs.rmSync(path.join(out, f), { recursive: true, force: true });
  fs.mkdirSync(logs, { recursive: true });
  const started = performance.now();
  const children: ChildProcess[] = [];
  const stopAll = () => { for (const c of children) if (c.exitCode === null) c.kill('SIGTERM'); };
  process.once('SIGINT', () => { stopAll(); process.exit(130); });
  process.once('SIGTERM', () => { stopAll(); process.exit(143); });
  try {
    console.log(`actiquest demo: task ${o.task}, 1 coordinator, ${o.datasets} dataset nodes, ${o.trainers} trainers, ${o.rounds} rounds (logs in ${logs})`);
    const coordinator = spawnRole(['coordinator', '--listen', '127.0.0.1:0', '--metrics-port', '0', '--task', o.task, '--rounds', String(o.rounds),
      '--cohort', String(o.trainers), '--min-trainers', String(Math.min(o['min-trainers'], o.trainers)),
      '--round-timeout', String(o['round-timeout']), '--strategy', o.strategy, '--local-epochs', String(o['local-epochs']), '--lr', String(o.lr), '--secure-aggregation', String(o['secure-aggregation']),
      '--clip-norm', String(o['clip-norm']), '--dp-noise', String(o['dp-noise']), '--out', out, '--exit-when-done'], path.join(logs, 'coordinator.log'), prof);
    children.push(coordinator);
    const coordinatorExit = new Promise<number | null>((resolve) => coordinator.once('exit', resolve));
    readline.createInterface({ input: coordinator.stdout! }).on('line', (line) => console.log(`  ${line}`));
    const { grpc: address, metrics } = await waitListening(coordinator);
    console.log(`coordinator on ${address} (metrics http://${metrics}/metrics)`);
    for (let i = 0; i < o.datasets; i++) {
      children.push(spawnRole(['dataset', '--listen', '127.0.0.1:0', '--metrics-port', '0', '--coordinator', address, '--task', o.task,
        '--seed', `dataset-${i}`, '--data-dir', path.join(out, 'datasets', o.task)], path.join(logs, `dataset-${i}.log`), prof));
    }
    for (let i = 0; i < o.trainers; i++) {
      // One training thread each: the demo's trainers share this machine's cores.
      children.push(spawnRole(['trainer', '--coordinator', address, '--metrics-port', '0', '--backend', o.backend, '--threads', '1',
        '--node-id', `trainer-${String(i).padStart(2, '0')}`], path.join(logs, `trainer-${i}.log`), prof));
    }
    const code = await coordinatorExit;
    if (code !== 0) throw new Error(`coordinator exited with code ${code}; see ${path.join(logs, 'coordinator.log')}`);
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as { finalValAccuracy: number; rounds: number; parameters: number };
    const history = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as { rounds: { round: number; participants: number; cohort: number; trainLoss: number; valAccuracy: number; valOrderF1?: number; durationSeconds: number; groups: number; groupsFailed: number }[] };
    const task = getTask(o.task);
    const steps = task.head.kind === 'classes' ? task.head.steps : undefined;
    const metric = steps ? 'step acc' : task.metricName;
    console.log('\nsummary');
    console.log(`  round  trainers  secure groups  train loss  ${metric.padStart(8)}${steps ? '  order F1' : ''}  seconds`);
    for (const r of history.rounds) {
      const groups = r.groups + r.groupsFailed > 0 ? `${r.groups}${r.groupsFailed ? ` (+${r.groupsFailed} dropped)` : ''}` : 'off';
      const f1 = steps ? `  ${(r.valOrderF1 ?? 0).toFixed(3).padStart(8)}` : '';
      console.log(`  ${String(r.round).padStart(5)}  ${`${r.participants}/${r.cohort}`.padStart(8)}  ${groups.padStart(13)}  ${r.trainLoss.toFixed(3).padStart(10)}  ${(r.valAccuracy * 100).toFixed(1).padStart(7)}%${f1}  ${r.durationSeconds.toFixed(1).padStart(7)}`);
    }
    const chance = task.head.kind === 'classes' ? `, chance is ${(100 / (steps ?? task.head.numClasses)).toFixed(1)}%` : '';
    const last = history.rounds.at(-1);
    const orderF1 = steps && last ? `, out-of-order F1 ${(last.valOrderF1 ?? 0).toFixed(3)}` : '';
    console.log(`  final validation ${steps ? 'step accuracy' : task.head.kind === 'classes' ? 'accuracy' : task.metricName} ${(summary.finalValAccuracy * 100).toFixed(1)}%${orderF1} after ${summary.rounds} rounds (${summary.parameters.toLocaleString('en-US')} parameters${chance})`);
    console.log(`  model: ${path.join(out, 'model', 'model.json')}; total ${((performance.now() - started) / 1000).toFixed(0)}s`);
  } finally {
    stopAll();
    await Promise.all(children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => new Promise((r) => c.once('exit', r))));
  }
}
