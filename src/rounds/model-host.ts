/**
 * A job's model, held in a process of its own (`model-process.ts`): the coordinator never builds
 * or runs a researcher's model on its own thread or heap. The host watches the process's
 * resident memory (Linux /proc, every 100 ms) and kills it past the limit; a trap, a crash or a
 * kill fails what was asked with {@link ModelMemoryError} or {@link ModelProcessError}, and the
 * host is done: the job that owns it fails with that reason, nothing else does.
 *
 * Requests go over Node's IPC channel, but a request's vectors (the parameters, a group's sum:
 * 4 bytes a parameter) go as raw bytes through the process's stdin, in the order their requests
 * were sent: the channel's serializer would copy each into buffers it grows as it writes, on
 * the coordinator's event loop, and the fresh memory and its collection cost more than the copy.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InvalidFieldError, ModelMemoryError, ModelProcessError } from '../errors.js';
import type { Evaluation } from '../model/index.js';
import { tsxLoaderUrl, type Logger } from '../util/index.js';
import type { ModelBuilt, ModelExample, ModelInit, ModelReply, ModelRequest, ModelSaved } from './model-process.js';
import { RAW_VECTOR_FIELDS } from './model-wire.js';

export type { ModelBuilt, ModelExample, ModelInit, ModelSaved } from './model-process.js';

/** How the model process is run. */
export interface ModelHostOptions {
  /** Most resident memory the process may have, in bytes; it is killed past it. */
  memoryLimitBytes: number;
  /** Names the process in `ps` (`model-process.ts --job ID`). */
  jobId: string;
  /** Called once if the process ends other than by {@link ModelHost.close} (memory, a trap, a kill). */
  onFailure?: (err: Error) => void;
  log?: Logger;
}

/** How often the process's resident memory is read. */
const WATCH_MS = 100;
/** Last characters of the process's stderr kept for the reason of a crash. */
const STDERR_TAIL = 2000;

/** Distributes a request without its id. */
type Request = ModelRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

const WHAT: Record<ModelRequest['op'], string> = {
  init: 'building the model', evaluate: 'evaluating the model',
  evaluateStep: 'evaluating a group\'s update', lossGradient: 'computing the validation gradient', save: 'saving the model',
  examples: 'predicting the card\'s examples',
};

/** The parent half: requests out, replies in, memory watched. */
export class ModelHost {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, { what: string; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  /** Digest of the parameters the process holds. */
  private loaded = '';
  private stderr = '';
  private readonly watch: NodeJS.Timeout;
  /** Set once the process is gone (or going): every later request fails with it. */
  private ended: Error | null = null;
  /** Largest resident memory seen, bytes. */
  peakRss = 0;
  private closing = false;

  private constructor(private readonly options: ModelHostOptions) {
    const entry = fileURLToPath(new URL('./model-process.ts', import.meta.url));
    const heapMib = Math.max(64, Math.floor(options.memoryLimitBytes / 2 ** 20));
    this.child = fork(entry, ['--job', options.jobId], {
      execArgv: ['--import', tsxLoaderUrl(), `--max-old-space-size=${heapMib}`],
      serialization: 'advanced',
      // It takes only the flags given here: the coordinator's NODE_OPTIONS are not for it.
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['pipe', 'ignore', 'pipe', 'ipc'],
    });
    // A process that is gone closes its stdin: its exit says why.
    this.child.stdin!.on('error', () => {});
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-STDERR_TAIL);
    });
    this.child.on('message', (m: ModelReply) => this.reply(m));
    this.child.on('exit', (code, signal) => {
      const last = this.stderr.split('\n').filter((l) => /error|abort|fatal/i.test(l)).at(-1) ?? '';
      this.end(null, `the process exited (${signal ?? `code ${code}`})${last ? `: ${last.trim()}` : ''}`);
    });
    this.child.on('error', (err) => this.end(null, err.message));
    this.watch = setInterval(() => this.checkMemory(), WATCH_MS).unref();
  }

  /** Starts a process, builds the model there (checked against the budgets), and draws the validation data. */
  static async start(init: ModelInit, options: ModelHostOptions): Promise<{ host: ModelHost; built: ModelBuilt }> {
    const host = new ModelHost(options);
    try {
      const built = (await host.request({ op: 'init', init })) as ModelBuilt;
      return { host, built };
    } catch (err) {
      host.close();
      throw err;
    }
  }

  /** Loss and task metric of `params` (digest `sha`) on the validation data. */
  async evaluate(params: Float32Array, sha: string): Promise<Evaluation> {
    return (await this.request({ op: 'evaluate', ...this.withParams(params, sha) })) as Evaluation;
  }

  /** Loss and task metric of `params + sum x scale`. */
  async evaluateStep(params: Float32Array, sha: string, sum: Float32Array, scale: number): Promise<Evaluation> {
    return (await this.request({ op: 'evaluateStep', ...this.withParams(params, sha), sum, scale })) as Evaluation;
  }

  /** Gradient of the validation loss at `params`. */
  async lossGradient(params: Float32Array, sha: string): Promise<Float32Array> {
    return (await this.request({ op: 'lossGradient', ...this.withParams(params, sha) })) as Float32Array;
  }

  /** Writes the model with `params` into `dir` (TF.js files and ONNX) and checks the ONNX file against TF.js. */
  async save(params: Float32Array, sha: string, dir: string): Promise<ModelSaved> {
    return (await this.request({ op: 'save', ...this.withParams(params, sha), dir })) as ModelSaved;
  }

  /** `count` samples drawn like the validation data (not from it): raw, as model input, and what `params` predicts for them. */
  async examples(params: Float32Array, sha: string, count: number): Promise<ModelExample[]> {
    return (await this.request({ op: 'examples', ...this.withParams(params, sha), count })) as ModelExample[];
  }

  /** Ends the process (idempotent); pending requests fail. */
  close(): void {
    this.closing = true;
    this.end(null, 'the model process was closed');
  }

  /** The digest, and the parameters themselves when the process holds others. */
  private withParams(params: Float32Array, sha: string): { sha: string; params?: Float32Array } {
    return sha === this.loaded ? { sha } : { sha, params };
  }

  private request(req: Request): Promise<unknown> {
    if (this.ended) return Promise.reject(this.ended);
    const id = this.nextId++;
    const what = WHAT[req.op];
    return new Promise((resolve, reject) => {
      this.pending.set(id, { what, resolve, reject });
      const message: Record<string, unknown> = { ...req, id };
      const raw: Float32Array[] = [];
      for (const field of RAW_VECTOR_FIELDS) {
        const v = message[field];
        if (!(v instanceof Float32Array)) continue;
        message[field] = { rawBytes: v.byteLength };
        raw.push(v);
      }
      this.child.send(message, (err) => {
        if (err) this.end(null, `the request could not be sent: ${err.message}`);
      });
      // Written from the vectors' own memory, not copied: callers leave them unchanged until the
      // reply, which the process sends only once it has read them.
      for (const v of raw) this.child.stdin!.write(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      if ('params' in req && req.params) this.loaded = req.sha;
    });
  }

  private reply(m: ModelReply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if ('ok' in m) {
      p.resolve(m.ok);
    } else if (m.error.field) {
      // The spec is at fault, not the process: said as the field it is.
      p.reject(new InvalidFieldError(m.error.field.field, m.error.field.expected, m.error.field.got));
    } else {
      // A trap or a throw inside the model: its state cannot be trusted again.
      const err = new ModelProcessError(p.what, `${m.error.name}: ${m.error.message}`);
      p.reject(err);
      this.end(err, '');
    }
  }

  /** Reads the process's resident memory; kills it past the limit. */
  private checkMemory(): void {
    const pid = this.child.pid;
    if (this.ended || pid === undefined) return;
    let rss: number;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (!m) return;
      rss = Number(m[1]) * 1024;
    } catch {
      return; // not Linux, or the process is gone (its exit says why)
    }
    this.peakRss = Math.max(this.peakRss, rss);
    if (rss <= this.options.memoryLimitBytes) return;
    const what = [...this.pending.values()][0]?.what ?? 'idle';
    const err = new ModelMemoryError(what, this.options.memoryLimitBytes, rss);
    this.options.log?.warn('model process stopped: over its memory limit', { rssBytes: rss, limitBytes: this.options.memoryLimitBytes, while: what });
    this.end(err, '');
  }

  /** The process is done: kill it, fail what is pending with `err` (or a process error saying `why`). */
  private end(err: Error | null, why: string): void {
    if (!this.ended) {
      this.ended = err ?? new ModelProcessError('idle', why);
      if (!this.closing) this.options.onFailure?.(this.ended);
    }
    clearInterval(this.watch);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(err ?? new ModelProcessError(p.what, why));
    }
  }
}
