/**
 * `actiquest <command>`: coordinator | dataset | trainer | keys | submit | jobs | job | cancel |
 * download | demo. Each role runs until SIGTERM or SIGINT, then stops admitting work, closes its
 * server and exits 0; the researchers' commands make one call to the coordinator each.
 *
 * One failure policy for the roles: an unhandled rejection or an uncaught exception is a bug, and
 * the state around it cannot be trusted. It is logged (one JSON line on stderr, with the role and
 * the stack), the role closes as on SIGTERM (a coordinator's store is flushed and closed; a
 * round in progress resumes on the next start) and the process exits with 70 (EX_SOFTWARE) for
 * its supervisor to restart it. A close that takes over 30 s is cut short.
 *
 * A role whose event loop stops turning says where (src/util/stall-watchdog.ts): after 5 s for
 * the coordinator and dataset nodes, 60 s for trainers (a training step holds the loop).
 */
import { HelpRequested, lineSink, watchStalls } from '../src/util/index.js';
import { ActiquestError } from '../src/errors.js';
import { JOB_COMMANDS } from './jobs-cli.js';
import { status } from '@grpc/grpc-js';

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<void> }> = {
  coordinator: {
    summary: 'run the coordinator (the subnet validator): its built-in job and the jobs researchers submit',
    run: async (argv) => {
      listenForStop('coordinator');
      const { loadCoordinatorConfig } = await import('../coordinator/config.js');
      const { startCoordinator } = await import('../coordinator/main.js');
      const config = loadCoordinatorConfig(argv);
      // A busy port is said before a job's model process probes the backends (their probes print to stderr).
      const { ensureCanListen } = await import('../src/wire/index.js');
      await ensureCanListen('listen', config.listen);
      const c = await startCoordinator(config);
      await untilSignal(() => c.close(), config.exitWhenDone ? c.done.then(() => c.jobs.idle()).then(() => c.flushWeights()) : undefined);
    },
  },
  dataset: {
    summary: 'run a dataset node that serves shards of human-motion data',
    run: async (argv) => {
      listenForStop('dataset');
      const { loadDatasetConfig } = await import('../dataset-node/config.js');
      const { startDatasetNode } = await import('../dataset-node/main.js');
      const node = await startDatasetNode(loadDatasetConfig(argv));
      await untilSignal(() => node.close());
    },
  },
  trainer: {
    summary: 'run a trainer node that trains rounds it is given',
    run: async (argv) => {
      listenForStop('trainer');
      const { loadTrainerConfig } = await import('../trainer-node/config.js');
      const { startTrainer } = await import('../trainer-node/main.js');
      const node = await startTrainer(loadTrainerConfig(argv));
      await untilSignal(() => node.close());
    },
  },
  keys: {
    summary: 'make a btcli-compatible hotkey: keys new --wallet.name NAME [--wallet.hotkey HOTKEY] [--wallet.path DIR] [--encrypt]',
    run: async (argv) => {
      const { runKeys } = await import('./keys.js');
      await runKeys(argv);
    },
  },
  ...Object.fromEntries(Object.entries(JOB_COMMANDS).map(([name, summary]) => [name, {
    summary,
    run: async (argv: string[]) => {
      const { runJobCommand } = await import('./jobs-cli.js');
      await runJobCommand(name as keyof typeof JOB_COMMANDS, argv);
    },
  }])),
  demo: {
    summary: 'run a whole federation on this machine as separate processes (npm start)',
    run: async (argv) => {
      const { runDemo } = await import('./demo.js');
      await runDemo(argv);
    },
  },
};

/**
 * SIGTERM or SIGINT, listened for from the moment the process starts: a signal during startup
 * (opening the store, resuming jobs) stops the role cleanly as soon as it is up.
 */
let stopSignal: Promise<void> | null = null;
/** Set once a bug surfaced as an unhandled rejection or uncaught exception. */
let failure: Promise<void> | null = null;
let failed = false;
/** The exit status of a role stopped by a bug (EX_SOFTWARE). */
const EXIT_BUG = 70;
const CLOSE_AFTER_BUG_MS = 30_000;

/** Longest a role's event loop may not turn before the watchdog says where it is stuck. */
const STALL_MS: Record<string, number> = { coordinator: 5000, dataset: 5000, trainer: 60_000 };

function listenForStop(role: string): void {
  watchStalls({ component: `${role}.watchdog`, stallMs: STALL_MS[role] ?? 5000 });
  stopSignal ??= new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  failure ??= new Promise<void>((resolve) => {
    const report = (what: string, err: unknown) => {
      const error = err instanceof Error ? err.stack ?? err.message : String(err);
      // Through the sink: a write that blocked here would also hold the exit below.
      lineSink(2)(`${JSON.stringify({ level: 'fatal', time: new Date().toISOString(), role, msg: `${what}: stopping cleanly for the supervisor to restart`, error })}\n`);
      if (failed) return;
      failed = true;
      // The close itself may hang on the state the bug left: it gets a bounded time.
      setTimeout(() => process.exit(EXIT_BUG), CLOSE_AFTER_BUG_MS).unref();
      resolve();
    };
    process.on('unhandledRejection', (reason) => report('unhandled rejection', reason));
    process.on('uncaughtException', (err) => report('uncaught exception', err));
  });
}

/** Waits for SIGTERM/SIGINT, a bug (see the top) or `until`, then runs `close` once. */
async function untilSignal(close: () => Promise<void>, until?: Promise<void>): Promise<void> {
  await Promise.race([stopSignal!, failure!, ...(until ? [until.catch(() => undefined)] : [])]);
  await close();
  if (failed) process.exit(EXIT_BUG);
}

function usage(): string {
  return ['usage: actiquest <command> [options]', '', 'commands:',
    ...Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(12)} ${c.summary}`),
    '', 'actiquest <command> --help lists the command\'s flags.'].join('\n');
}

const [cmd, ...rest] = process.argv.slice(2);
if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
  process.stdout.write(`${usage()}\n`);
  process.exit(cmd ? 0 : 2);
}
const command = COMMANDS[cmd];
if (!command) {
  process.stderr.write(`actiquest: unknown command ${JSON.stringify(cmd)}\n\n${usage()}\n`);
  process.exit(2);
}
try {
  await command.run(rest);
  process.exit(0);
} catch (err) {
  if (err instanceof HelpRequested) {
    process.stdout.write(`${err.text}\n`);
    process.exit(0);
  }
  const e = err as { code?: number; details?: string };
  const msg = err instanceof ActiquestError ? err.message
    : typeof e.code === 'number' && typeof e.details === 'string' ? `${status[e.code] ?? e.code}: ${e.details}`
      : (err as Error).stack ?? String(err);
  process.stderr.write(`actiquest ${cmd}: ${msg}\n`);
  process.exit(1);
}
