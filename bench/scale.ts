/**
 * `npm run bench:scale`: one real coordinator process under N simulated trainers running real
 * rounds with secure aggregation at P parameters. The trainers (bench/scale-trainers.ts, in
 * `--procs` processes) are real trainer nodes over gRPC whose updates are made up instead of
 * trained: what is measured is the coordinator. The job is the exercise task with an MLP whose
 * hidden width gives about P parameters; a dataset node lists shards (never fetched).
 *
 * For each run (`--runs NxP,...`, default 100x1000000) it prints, per round: the round's
 * seconds and its phases (from the coordinator's round records), the coordinator process's CPU
 * seconds and minor page faults (fresh memory touched) in the round, and its overhead: that CPU
 * time plus the phases its model process runs (the validation gradient, the sums' scores, the
 * validation); and its transport floor: what Node's HTTP/2 alone spends on the round's bytes,
 * at the cost a byte measured first, in the same run (`transport-floor.ts`). Then, for the run: the latency of
 * a GetStatus call made every 100 ms from this process, the coordinator's own event-loop delay
 * (its `nodejs_eventloop_lag_max_seconds`, read every 250 ms), its garbage collector's pauses
 * (`nodejs_gc_duration_seconds`, by kind), its main thread's time running and waiting runnable for
 * a core (/proc schedstat, in all and over the readings whose delay passed 100 ms, which tells
 * the thread's own work from the cores' contention) and its other threads' CPU, the simulated trainers' CPU
 * seconds, and the coordinator's peak RSS (VmHWM) beside the most its V8 heap and its buffers
 * outside the heap held, its CPU in all and in the kernel, and its update bytes in and model bytes out. The coordinator's CPU
 * and its slow event-loop windows are also told by the phase its round was in (its
 * `actiquest_round_phase` gauge), and each of the three goals (a round's overhead under 10 s,
 * peak RSS under 1,024 MiB, event-loop delay p99 under 100 ms) is said met or missed, with the
 * phase that holds it. Options: --runs
 * 100x1000000,300x1000000 --rounds 2 --procs N (default: one process per 100 trainers, at
 * least 4) --min-group-size 5, and --coordinator-args='--max-sum-mib 0' (extra coordinator
 * flags; the `=` is needed, as the value starts with a dash). The trainers run at the lowest CPU priority
 * (nice 19): they stand in for other machines, and the coordinator's figures are its own.
 * `AQ_CPU_PROF_DIR`: the coordinator and the trainers write CPU profiles there; `AQ_NODE_ARGS`:
 * more Node flags for the coordinator (`--perf-basic-prof`, for `perf record -p`); `AQ_WRAPPER`: a
 * command that runs the coordinator (`heaptrack -o FILE`, for where its native memory goes);
 * `AQ_TRAINER_LOG_LEVEL`: the simulated trainers' log level (warn; info tells each task's
 * steps, in the trainers-N.log kept with `AQ_KEEP=1`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { spawnRole, waitListening } from '../bin/demo.js';
import { probe, quantile } from './attack-kit.js';
import { measureTransportFloor, type TransportFloor } from './transport-floor.js';

const { values } = parseArgs({ options: {
  runs: { type: 'string', default: '100x1000000' },
  rounds: { type: 'string', default: '2' },
  procs: { type: 'string', default: '' },
  'min-group-size': { type: 'string', default: '5' },
  'coordinator-args': { type: 'string', default: '' },
} });
const ROUNDS = Number(values.rounds);
/** Processes of simulated trainers for a run of `n`. */
const procsFor = (n: number) => (values.procs ? Number(values.procs) : Math.max(4, Math.ceil(n / 100)));
const TRAINERS_SCRIPT = fileURLToPath(new URL('./scale-trainers.ts', import.meta.url));
/** Stops a child and waits for it. */
function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    c.once('exit', () => resolve());
    c.kill('SIGTERM');
  });
}

/** The first process at or below `pid` that runs this Node binary (a wrapper's child, say). */
function nodeBelow(pid: number): number {
  const queue = [pid];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    try {
      if (fs.readlinkSync(`/proc/${p}/exe`) === fs.realpathSync(process.execPath)) return p;
      queue.push(...fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no Node process runs under ${pid} (AQ_WRAPPER)`);
}

/** Clock ticks a second in /proc/<pid>/stat (Linux's USER_HZ). */
const TICK = 100;

/** The coordinator's CPU seconds (user + system, and the system part), minor page faults, and resident bytes, now and at peak. */
function sample(pid: number): { cpu: number; sys: number; faults: number; rss: number; peak: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const sys = Number(fields[12]) / TICK;
  const cpu = Number(fields[11]) / TICK + sys;
  const faults = Number(fields[7]);
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { cpu, sys, faults, rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/**
 * Nanoseconds the coordinator's main thread (its tid is the pid) has run and has waited
 * runnable for a CPU (/proc/<pid>/task/<pid>/schedstat), and what its other threads ran (mask
 * threads, the garbage collector's helpers, libuv's pool).
 */
function threads(pid: number): { mainRun: number; mainWait: number; othersRun: number } {
  const read = (tid: string) => fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
  const [mainRun = 0, mainWait = 0] = read(String(pid));
  let othersRun = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    if (tid === String(pid)) continue;
    try {
      othersRun += read(tid)[0] ?? 0;
    } catch {
      // ended meanwhile
    }
  }
  return { mainRun, mainWait, othersRun };
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
/** CPU seconds node:http2 alone spends on `bytesIn` received and `bytesOut` sent, at the floor measured in this run. */
const floorSeconds = (f: TransportFloor, bytesIn: number, bytesOut: number) => (bytesIn * f.inNsPerByte + bytesOut * f.outNsPerByte) / 1e9;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** The scale goals: a round's coordinator overhead at N = 1,000 and P = 1M, peak RSS at N = 100 and P = 10M, event-loop delay p99 at N = 1,000. */
const GOALS = { overheadS: 10, peakBytes: 2 ** 30, p99Ms: 100 };

interface RoundRow { round: number; durationSeconds: number; participants: number; groups: number; phaseSeconds?: Record<string, number> }

async function runOnce(n: number, p: number, floor: TransportFloor): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-bench-scale-'));
  // One hidden layer up to 4,096 units (the most a spec takes), then a second.
  const one = Math.max(1, Math.round((p - 7) / (1632 + 1 + 7)));
  const hiddenLayers = one <= 4096 ? [one] : [4096, Math.max(1, Math.round((p - 1633 * 4096 - 7) / (4096 + 1 + 7)))];
  const params = hiddenLayers.reduce((acc, h, i) => acc + ((i === 0 ? 1632 : hiddenLayers[i - 1]!) + 1) * h, 0) + (hiddenLayers.at(-1)! + 1) * 7;
  const children: ChildProcess[] = [];
  try {
    const coordinator = spawnRole(['coordinator', '--listen', '127.0.0.1:0', '--metrics-port', '0', '--out', dir, '--task', 'exercise',
      '--model', JSON.stringify({ family: 'mlp', hidden: hiddenLayers }), '--max-params', '20000000', '--rounds', String(ROUNDS), '--cohort', String(n),
      '--min-trainers', String(Math.ceil(0.9 * n)), '--min-group-size', values['min-group-size'], '--round-timeout', '900', '--stage-timeout', '300', '--unmask-timeout', '300', '--cohort-wait', '0',
      // Simulated trainers share the machine's cores: their heartbeats run late, which is not
      // what is measured. On 2 cores at N = 1,000 a trainers' process at nice 19 can be left
      // without a core for minutes while the coordinator sends the model to all at once; with a
      // 120 s live timeout a round's first attempt lost a third of its trainers that way.
      // Heartbeats every 10 s: at 1 s, 1,000 trainers' heartbeats and long polls kept the
      // coordinator at about half a core while the round waited (Performance).
      '--heartbeat-interval-ms', '10000', '--live-timeout-ms', '600000',
      '--local-epochs', '1', '--validation-samples', '70', '--exit-when-done', ...values['coordinator-args'].split(' ').filter(Boolean)], path.join(dir, 'coordinator.log'),
      { cpuProfDir: process.env.AQ_CPU_PROF_DIR, nodeArgs: process.env.AQ_NODE_ARGS?.split(' ').filter(Boolean), wrapper: process.env.AQ_WRAPPER?.split(' ').filter(Boolean) });
    children.push(coordinator);
    const exited = new Promise<number | null>((resolve) => coordinator.once('exit', resolve));
    const { grpc, metrics } = await waitListening(coordinator);
    // Under AQ_WRAPPER the child is the wrapper: what is sampled is the Node process it runs.
    const pid = process.env.AQ_WRAPPER ? nodeBelow(coordinator.pid!) : coordinator.pid!;
    // The coordinator's responsiveness meanwhile: a GetStatus call every 100 ms from this process.
    const watch = probe(grpc, pid);
    children.push(spawnRole(['dataset', '--listen', '127.0.0.1:0', '--metrics-port', '-1', '--coordinator', grpc, '--seed', 'scale',
      '--shards', String(n), '--samples-per-shard', '8', '--data-dir', path.join(dir, 'datasets')], path.join(dir, 'dataset.log')));
    const trainerProcs: ChildProcess[] = [];
    const procs = procsFor(n);
    const per = Math.ceil(n / procs);
    for (let i = 0; i < procs && i * per < n; i++) {
      const t = spawnRole(['--coordinator', grpc, '--from', String(i * per), '--count', String(Math.min(per, n - i * per)), '--log', path.join(dir, `trainers-${i}.log`)],
        // At the lowest priority: they stand in for other machines, and take what CPU the coordinator leaves.
        path.join(dir, `trainers-${i}.err`), { script: TRAINERS_SCRIPT, wrapper: ['nice', '-n', '19'], cpuProfDir: process.env.AQ_CPU_PROF_DIR && path.join(process.env.AQ_CPU_PROF_DIR, 'trainers') });
      children.push(t);
      trainerProcs.push(t);
    }
    // Samples until the coordinator exits: CPU at each completed round, the last metrics read.
    const first = sample(pid);
    const atRound: { cpu: number; faults: number; bytesIn: number; bytesOut: number }[] = [{ cpu: first.cpu, faults: first.faults, bytesIn: 0, bytesOut: 0 }];
    let last = { cpu: 0, sys: 0, faults: 0, rss: 0, peak: 0 }, text = '', rounds = 0;
    let done = false;
    let trainersCpu = 0, heapPeak = 0, externalPeak = 0;
    const lags: number[] = [];
    // What the coordinator did, by the phase its job was in at each reading: CPU seconds, the
    // event-loop delay windows over the goal's 100 ms, and the phase at the highest RSS.
    const byPhase = new Map<string, { cpu: number; slow: number; windows: number }>();
    // The main thread's time running and waiting for a CPU, in all and in the windows whose
    // event-loop delay passed the goal: a delay with the thread waiting is the cores' contention,
    // one with it running is its own work.
    let sched = { mainRun: 0, mainWait: 0, othersRun: 0 }, readAt = 0;
    const waits = { run: 0, wait: 0, others: 0, slowRun: 0, slowWait: 0, slowOthers: 0, slowWindows: 0, slowMs: 0, slowWall: 0 };
    let phase = 'starting', peakPhase = phase, peakRss = 0;
    let watched: ReturnType<typeof watch.stop> | null = null;
    void exited.then(() => {
      done = true;
      watched ??= watch.stop();
    });
    while (!done) {
      try {
        const now = sample(pid);
        const spent = last.cpu > 0 ? now.cpu - last.cpu : 0;
        // An exiting process's status has no memory lines: keep the last real reading.
        if (now.peak > 0) last = now;
        text = await (await fetch(`http://${metrics}/metrics`)).text();
        const at = byPhase.get(phase) ?? byPhase.set(phase, { cpu: 0, slow: 0, windows: 0 }).get(phase)!;
        at.cpu += spent;
        if (now.rss > peakRss) [peakRss, peakPhase] = [now.rss, phase];
        // The coordinator's own event-loop delay in the window since the last read (prom-client resets it each read).
        const lagMax = metric(text, 'nodejs_eventloop_lag_max_seconds');
        const t = threads(pid);
        const d = { run: t.mainRun - sched.mainRun, wait: t.mainWait - sched.mainWait, others: t.othersRun - sched.othersRun };
        const primed = sched.mainRun > 0, wall = performance.now() - readAt;
        [sched, readAt] = [t, performance.now()];
        if (primed) [waits.run, waits.wait, waits.others] = [waits.run + d.run, waits.wait + d.wait, waits.others + d.others];
        if (lagMax > 0) {
          lags.push(lagMax * 1000);
          at.windows++;
          if (lagMax * 1000 > GOALS.p99Ms) {
            at.slow++;
            if (primed) {
              waits.slowWindows++;
              waits.slowMs += lagMax * 1000;
              waits.slowWall += wall;
              [waits.slowRun, waits.slowWait, waits.slowOthers] = [waits.slowRun + d.run, waits.slowWait + d.wait, waits.slowOthers + d.others];
            }
          }
        }
        phase = /^actiquest_round_phase\{[^}]*phase="([a-z]+)"[^}]*\} 1$/m.exec(text)?.[1] ?? 'between rounds';
        heapPeak = Math.max(heapPeak, metric(text, 'nodejs_heap_size_used_bytes'));
        externalPeak = Math.max(externalPeak, metric(text, 'nodejs_external_memory_bytes'));
        const completed = [...text.matchAll(/^actiquest_rounds_total\{[^}]*result="completed"[^}]*\} (\S+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
        while (rounds < completed) {
          rounds++;
          atRound.push({ cpu: last.cpu, faults: last.faults, bytesIn: metric(text, 'actiquest_received_bytes_total'), bytesOut: metric(text, 'actiquest_sent_bytes_total') });
        }
        // The last round is done: the probe stops before the coordinator exits.
        if (rounds >= ROUNDS) watched ??= watch.stop();
        trainersCpu = trainerProcs.reduce((sum, t) => sum + sample(t.pid!).cpu, 0);
      } catch {
        // exiting
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const code = await exited;
    const seen = await (watched ?? watch.stop());
    if (code !== 0) throw new Error(`coordinator exited with ${code}; see ${path.join(dir, 'coordinator.log')}`);
    const historyFile = path.join(dir, 'history.json');
    if (!fs.existsSync(historyFile)) {
      process.env.AQ_KEEP = '1';
      const tail = fs.readFileSync(path.join(dir, 'coordinator.log'), 'utf8').trim().split('\n').slice(-5).join('\n');
      throw new Error(`the coordinator recorded no round (no ${historyFile}); its last log lines:\n${tail}`);
    }
    const history = (JSON.parse(fs.readFileSync(historyFile, 'utf8')) as { rounds: RoundRow[] }).rounds;
    console.log(`\n== N = ${n} trainers, P = ${params.toLocaleString('en-US')} parameters (MLP 1632 -> ${hiddenLayers.join(' -> ')} -> 7), secure aggregation, groups of ${values['min-group-size']}+, trainers in ${procsFor(n)} processes`);
    console.log('  round  trainers  groups  seconds  gradient  plan  collect  evaluate  aggregate  validate  coordinator CPU s  page faults  overhead s  floor s');
    // What node:http2 alone would spend on each round's bytes (the baseline measured first).
    const floors = history.map((_, i) => (atRound[i + 1] ? floorSeconds(floor, atRound[i + 1]!.bytesIn - atRound[i]!.bytesIn, atRound[i + 1]!.bytesOut - atRound[i]!.bytesOut) : NaN));
    history.forEach((r, i) => {
      const ph = r.phaseSeconds ?? {};
      const cpu = atRound[i + 1] ? atRound[i + 1]!.cpu - atRound[i]!.cpu : NaN;
      const faults = atRound[i + 1] ? atRound[i + 1]!.faults - atRound[i]!.faults : NaN;
      // The model process does the gradient, the sums' scores and the validation: its time there
      // is the coordinator's too (its CPU is not in the coordinator process's own).
      const overhead = cpu + (ph.gradient ?? 0) + (ph.evaluate ?? 0) + (ph.validate ?? 0);
      const f = (k: string) => (ph[k] ?? 0).toFixed(2);
      console.log(`  ${String(r.round).padStart(5)}  ${String(r.participants).padStart(8)}  ${String(r.groups).padStart(6)}  ${r.durationSeconds.toFixed(1).padStart(7)}  ${f('gradient').padStart(8)}  ${f('plan').padStart(4)}  ${f('collect').padStart(7)}  ${f('evaluate').padStart(8)}  ${f('aggregate').padStart(9)}  ${f('validate').padStart(8)}  ${cpu.toFixed(1).padStart(17)}  ${faults.toLocaleString('en-US').padStart(11)}  ${overhead.toFixed(1).padStart(10)}  ${floors[i]!.toFixed(1).padStart(7)}`);
    });
    console.log(`  GetStatus from a probe every 100 ms (${seen.latencies.length} calls, ${seen.failures.length} failed): p50 ${quantile(seen.latencies, 0.5).toFixed(1)} ms, p99 ${quantile(seen.latencies, 0.99).toFixed(1)} ms, max ${quantile(seen.latencies, 1).toFixed(1)} ms`);
    console.log(`  coordinator event-loop delay, worst in each 250 ms window (${lags.length} windows): p50 ${quantile(lags, 0.5).toFixed(1)} ms, p99 ${quantile(lags, 0.99).toFixed(1)} ms, max ${quantile(lags, 1).toFixed(1)} ms`);
    const gc = (kind: string) => Number(new RegExp(`^nodejs_gc_duration_seconds_sum\\{[^}]*kind="${kind}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    const s_ = (ns: number) => `${(ns / 1e9).toFixed(1)} s`;
    console.log(`  coordinator's main thread: ran ${s_(waits.run)}, waited ${s_(waits.wait)} runnable for a CPU; its other threads ran ${s_(waits.others)}`);
    if (waits.slowWindows > 0) {
      console.log(`  in the ${waits.slowWindows} readings whose event-loop delay passed ${GOALS.p99Ms} ms (the delay ${(waits.slowMs / waits.slowWindows).toFixed(0)} ms on average, the readings ${(waits.slowWall / waits.slowWindows).toFixed(0)} ms apart), the main thread ran ${(waits.slowRun / 1e6 / waits.slowWindows).toFixed(0)} ms and waited ${(waits.slowWait / 1e6 / waits.slowWindows).toFixed(0)} ms for a CPU a reading on average; its other threads ran ${(waits.slowOthers / 1e6 / waits.slowWindows).toFixed(0)} ms`);
    }
    console.log(`  coordinator's garbage collection, main-thread pauses in all: major ${gc('major').toFixed(1)} s, incremental marking ${gc('incremental').toFixed(1)} s, minor ${gc('minor').toFixed(1)} s`);
    console.log(`  the simulated trainers' processes: ${trainersCpu.toFixed(1)} CPU s in all (masking, uploads; the machine's ${os.cpus().length} cores are shared with the coordinator)`);
    const phases = [...byPhase].filter(([, v]) => v.cpu >= 0.05 || v.slow > 0).sort((a, b) => b[1].cpu - a[1].cpu);
    console.log(`  coordinator CPU by the job's phase (a secure group's evaluation and aggregation run within collect): ${phases.map(([k, v]) => `${k} ${v.cpu.toFixed(1)} s`).join(', ')}`);
    console.log(`  event-loop delay windows over ${GOALS.p99Ms} ms, by phase: ${phases.filter(([, v]) => v.slow > 0).map(([k, v]) => `${k} ${v.slow} of ${v.windows}`).join(', ') || 'none'}`);
    // The goals: each run is measured against all three; the targets name the N and P they are set for.
    const lastRound = history.at(-1);
    const lastOverhead = lastRound && atRound[history.length] ? atRound[history.length]!.cpu - atRound[history.length - 1]!.cpu
      + ['gradient', 'evaluate', 'validate'].reduce((sum, k) => sum + (lastRound.phaseSeconds?.[k] ?? 0), 0) : NaN;
    const held = phases[0]?.[0] ?? 'none';
    const p99 = quantile(lags, 0.99);
    const worstLag = [...byPhase].sort((a, b) => b[1].slow - a[1].slow)[0]?.[0] ?? 'none';
    const verdict = (ok: boolean, why: string) => (ok ? 'met' : `missed; ${why}`);
    const lastFloor = floors.at(-1) ?? NaN;
    console.log(`  goal, round overhead under ${GOALS.overheadS} s (set for N = 1,000, P = 1M): last round ${lastOverhead.toFixed(1)} s, ${verdict(lastOverhead < GOALS.overheadS, `most coordinator CPU in ${held}`)}; its bytes alone cost node:http2 ${lastFloor.toFixed(1)} s here (${(lastOverhead / lastFloor).toFixed(1)}x that)`);
    console.log(`  goal, peak RSS under ${mib(GOALS.peakBytes)} (set for N = 100, P = 10M): ${mib(last.peak)}, ${verdict(last.peak < GOALS.peakBytes, `the highest reading was in ${peakPhase}`)}`);
    console.log(`  goal, event-loop delay p99 under ${GOALS.p99Ms} ms (set for N = 1,000): ${p99.toFixed(1)} ms, ${verdict(p99 < GOALS.p99Ms, `most slow windows in ${worstLag}`)}`);
    console.log(`  coordinator: peak RSS ${mib(last.peak)} (last ${mib(last.rss)}; V8 heap at most ${mib(heapPeak)}, buffers outside it at most ${mib(externalPeak)}), ${last.cpu.toFixed(1)} CPU s in all (${last.sys.toFixed(1)} s of it in the kernel); update bytes in ${mib(metric(text, 'actiquest_received_bytes_total'))}, model bytes out ${mib(metric(text, 'actiquest_sent_bytes_total'))}`);
  } finally {
    await Promise.all(children.map(stop));
    if (process.env.AQ_KEEP) console.log(`  (kept ${dir})`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`actiquest bench:scale (node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${mib(os.totalmem())}); ${ROUNDS} rounds a run`);
// The baseline, in this run: what Node's HTTP/2 alone costs a server per byte here.
const floor = await measureTransportFloor();
console.log(`transport floor: node:http2 alone, ${floor.mib} MiB each way over ${floor.connections} connections (the least of ${floor.tries} passes), cost its server ${floor.inNsPerByte.toFixed(2)} ns of CPU a byte received and ${floor.outNsPerByte.toFixed(2)} ns a byte sent`);
for (const run of values.runs.split(',')) {
  const [n, p] = run.split('x').map(Number);
  await runOnce(n!, p!, floor);
}
