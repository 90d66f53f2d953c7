/**
 * The coordinator's durable state: a SQLite file (`<out>/coordinator.db`, better-sqlite3,
 * WAL, synchronous FULL) with versioned migrations, and content-addressed checkpoint files
 * (`<out>/checkpoints/<sha256>`), whose digest is checked when they are loaded.
 *
 * After each completed round the runner writes the checkpoint (the global parameters and the
 * strategy's state) to a temporary file, fsyncs and renames it, then records the round (its
 * result, its scored groups, the checkpoint's digest) in one transaction. A crash before the
 * transaction leaves an unreferenced file and the round is run again; after it, the round is
 * kept. A restarted coordinator with the same `--out` continues the job from its last recorded
 * round.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { sha256 } from '../wire/index.js';
import type { StrategyState } from '../aggregation/index.js';

/** Schema migrations, in order; `PRAGMA user_version` is how many have run. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE jobs (
     job_id TEXT PRIMARY KEY,
     config TEXT NOT NULL,
     state TEXT NOT NULL,
     created_ms INTEGER NOT NULL,
     updated_ms INTEGER NOT NULL
   );
   CREATE TABLE rounds (
     job_id TEXT NOT NULL REFERENCES jobs(job_id),
     round INTEGER NOT NULL,
     record TEXT NOT NULL,
     groups TEXT NOT NULL,
     checkpoint TEXT NOT NULL,
     PRIMARY KEY (job_id, round)
   );`,
  // Jobs submitted by researchers: their whole config, so a restart brings them back.
  `ALTER TABLE jobs ADD COLUMN spec TEXT NOT NULL DEFAULT '';
   ALTER TABLE jobs ADD COLUMN builtin INTEGER NOT NULL DEFAULT 1;
   ALTER TABLE jobs ADD COLUMN description TEXT NOT NULL DEFAULT '';
   ALTER TABLE jobs ADD COLUMN submitted_by TEXT NOT NULL DEFAULT '';`,
  // Nodes' operational records, shared state of the scores, and every weight setting.
  `CREATE TABLE nodes (
     node_id TEXT PRIMARY KEY,
     role TEXT NOT NULL,
     record TEXT NOT NULL,
     updated_ms INTEGER NOT NULL
   );
   CREATE TABLE state (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL
   );
   CREATE TABLE weights (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at_ms INTEGER NOT NULL,
     rounds INTEGER NOT NULL,
     block INTEGER,
     mode TEXT NOT NULL,
     uids TEXT NOT NULL,
     vals TEXT NOT NULL,
     scores TEXT NOT NULL
   );`,
  // Why a FAILED job failed.
  `ALTER TABLE jobs ADD COLUMN failure TEXT NOT NULL DEFAULT '';`,
];

/** One weight setting (on chain, or the local report without a chain). */
export interface StoredWeights {
  atMs: number;
  /** Rounds completed (all jobs) when it was made. */
  rounds: number;
  /** The chain block, or null without a chain. */
  block: number | null;
  /** set, commit, or local (no chain). */
  mode: string;
  uids: number[];
  values: number[];
  /** Every node's score and its parts at the time. */
  scores: unknown[];
}

/** A job as the store lists it. */
export interface StoredJob {
  jobId: string;
  state: string;
  /** The job's config as JSON (empty for the built-in job of stores made before jobs were submitted). */
  spec: string;
  builtin: boolean;
  description: string;
  submittedBy: string;
  createdMs: number;
  updatedMs: number;
  /** Why a FAILED job failed (empty otherwise). */
  failure: string;
}

/** A checkpoint: the global parameters and the strategy's state. */
export interface Checkpoint {
  params: Float32Array;
  strategy: StrategyState;
}

/** One recorded round. */
export interface StoredRound<R, G> {
  round: number;
  record: R;
  groups: G;
  checkpoint: string;
}

const MAGIC = 'AQC1';

/** Serialises a checkpoint: magic, u32 header length, JSON header, then float32 arrays. */
export function encodeCheckpoint(c: Checkpoint): Buffer {
  const arrays: [string, Float32Array][] = [['params', c.params]];
  const scalars: Record<string, number> = {};
  for (const [k, v] of Object.entries(c.strategy)) {
    if (v instanceof Float32Array) arrays.push([`strategy.${k}`, v]);
    else scalars[k] = v;
  }
  const header = Buffer.from(JSON.stringify({ arrays: arrays.map(([name, a]) => ({ name, length: a.length })), scalars }));
  const pre = 8 + header.length;
  const start = pre + ((4 - (pre % 4)) % 4);
  const out = Buffer.alloc(start + arrays.reduce((n, [, a]) => n + a.byteLength, 0));
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(header.length, 4);
  header.copy(out, 8);
  let off = start;
  for (const [, a] of arrays) {
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).copy(out, off);
    off += a.byteLength;
  }
  return out;
}

/** Parses a checkpoint (its digest already checked). */
export function decodeCheckpoint(bytes: Buffer): Checkpoint {
  if (bytes.toString('latin1', 0, 4) !== MAGIC) throw new Error(`checkpoint: expected magic ${MAGIC}`);
  const len = bytes.readUInt32LE(4);
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + len)) as { arrays: { name: string; length: number }[]; scalars: Record<string, number> };
  const pre = 8 + len;
  let off = pre + ((4 - (pre % 4)) % 4);
  const strategy: StrategyState = { ...header.scalars };
  let params = new Float32Array(0);
  for (const { name, length } of header.arrays) {
    const a = new Float32Array(length);
    new Uint8Array(a.buffer).set(bytes.subarray(off, off + length * 4));
    off += length * 4;
    if (name === 'params') params = a;
    else strategy[name.slice('strategy.'.length)] = a;
  }
  if (off !== bytes.length) throw new Error(`checkpoint: expected ${off} bytes, got ${bytes.length}`);
  return { params, strategy };
}

/** The coordinator's store. */
/** A node's saved record: its role and whatever the registry keeps of it. */
export interface NodeRecord {
  nodeId: string;
  role: string;
  record: unknown;
}

export class CoordinatorStore {
  private readonly db: Database.Database;
  private readonly checkpointDir: string;

  constructor(dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    this.checkpointDir = path.join(dir, 'checkpoints');
    fs.mkdirSync(this.checkpointDir, { recursive: true });
    this.db = new Database(path.join(dir, 'coordinator.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
  }

  /** Runs the migrations this file has not run yet, each in its own transaction. */
  private migrate(): void {
    const done = this.db.pragma('user_version', { simple: true }) as number;
    if (done > MIGRATIONS.length) throw new Error(`coordinator.db: schema version ${done} is newer than this coordinator knows (${MIGRATIONS.length}); use a newer coordinator`);
    for (let v = done; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** The job's stored config and state, or null. */
  job(jobId: string): { config: string; state: string } | null {
    const row = this.db.prepare('SELECT config, state FROM jobs WHERE job_id = ?').get(jobId) as { config: string; state: string } | undefined;
    return row ?? null;
  }

  /** Records a job (or its new state, and why it failed). */
  saveJob(jobId: string, config: string, state: string, failure = ''): void {
    const now = Date.now();
    this.db.prepare(`INSERT INTO jobs (job_id, config, state, created_ms, updated_ms, failure) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT(job_id) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms, failure = excluded.failure`).run(jobId, config, state, now, now, failure);
  }

  /** Records a job's whole config (submitted jobs: what a restart rebuilds them from). */
  saveSpec(jobId: string, spec: string, builtin: boolean, description: string, submittedBy: string): void {
    this.db.prepare('UPDATE jobs SET spec = ?, builtin = ?, description = ?, submitted_by = ? WHERE job_id = ?').run(spec, builtin ? 1 : 0, description, submittedBy, jobId);
  }

  /** Every job, oldest first. */
  jobs(): StoredJob[] {
    const rows = this.db.prepare('SELECT job_id, state, spec, builtin, description, submitted_by, created_ms, updated_ms, failure FROM jobs ORDER BY created_ms, job_id').all() as
      { job_id: string; state: string; spec: string; builtin: number; description: string; submitted_by: string; created_ms: number; updated_ms: number; failure: string }[];
    return rows.map((r) => ({
      jobId: r.job_id, state: r.state, spec: r.spec, builtin: r.builtin === 1, description: r.description, submittedBy: r.submitted_by, createdMs: r.created_ms, updatedMs: r.updated_ms,
      failure: r.failure,
    }));
  }

  /** Saves nodes' records (one transaction). */
  saveNodes(nodes: readonly NodeRecord[]): void {
    this.db.transaction(() => this.putNodes(nodes))();
  }

  private putNodes(nodes: readonly NodeRecord[]): void {
    const now = Date.now();
    const put = this.db.prepare('INSERT INTO nodes (node_id, role, record, updated_ms) VALUES (?, ?, ?, ?) ON CONFLICT(node_id) DO UPDATE SET role = excluded.role, record = excluded.record, updated_ms = excluded.updated_ms');
    for (const n of nodes) put.run(n.nodeId, n.role, JSON.stringify(n.record), now);
  }

  /** Every node's saved record. */
  nodes<R>(): { nodeId: string; role: string; record: R }[] {
    const rows = this.db.prepare('SELECT node_id, role, record FROM nodes ORDER BY node_id').all() as { node_id: string; role: string; record: string }[];
    return rows.map((r) => ({ nodeId: r.node_id, role: r.role, record: JSON.parse(r.record) as R }));
  }

  /** A named piece of state (JSON), or null. */
  getState<T>(key: string): T | null {
    const row = this.db.prepare('SELECT value FROM state WHERE key = ?').get(key) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as T) : null;
  }

  setState(key: string, value: unknown): void {
    this.db.prepare('INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(value));
  }

  /** Appends a weight setting to the history. */
  addWeights(w: StoredWeights): void {
    this.db.prepare('INSERT INTO weights (at_ms, rounds, block, mode, uids, vals, scores) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(w.atMs, w.rounds, w.block, w.mode, JSON.stringify(w.uids), JSON.stringify(w.values), JSON.stringify(w.scores));
  }

  /** The weight history, oldest first; with `last`, only the last that many. */
  weightsHistory(last?: number): StoredWeights[] {
    const rows = (last === undefined
      ? this.db.prepare('SELECT at_ms, rounds, block, mode, uids, vals, scores FROM weights ORDER BY id').all()
      : this.db.prepare('SELECT * FROM (SELECT id, at_ms, rounds, block, mode, uids, vals, scores FROM weights ORDER BY id DESC LIMIT ?) ORDER BY id').all(last)) as
      { at_ms: number; rounds: number; block: number | null; mode: string; uids: string; vals: string; scores: string }[];
    return rows.map((r) => ({ atMs: r.at_ms, rounds: r.rounds, block: r.block, mode: r.mode, uids: JSON.parse(r.uids), values: JSON.parse(r.vals), scores: JSON.parse(r.scores) }));
  }

  /** Every recorded round of a job, in order. */
  rounds<R, G>(jobId: string): StoredRound<R, G>[] {
    const rows = this.db.prepare('SELECT round, record, groups, checkpoint FROM rounds WHERE job_id = ? ORDER BY round').all(jobId) as { round: number; record: string; groups: string; checkpoint: string }[];
    return rows.map((r) => ({ round: r.round, record: JSON.parse(r.record) as R, groups: JSON.parse(r.groups) as G, checkpoint: r.checkpoint }));
  }

  /** Writes a checkpoint file (temp, fsync, rename) and returns its digest. */
  writeCheckpoint(c: Checkpoint): string {
    const bytes = encodeCheckpoint(c);
    const digest = sha256(bytes).toString('hex');
    const file = path.join(this.checkpointDir, digest);
    if (!fs.existsSync(file)) {
      const tmp = `${file}.tmp`;
      try {
        const fd = fs.openSync(tmp, 'w');
        try {
          // writeSync may write less than asked (a full disk): write the rest, or fail.
          for (let at = 0; at < bytes.length;) {
            const n = fs.writeSync(fd, bytes, at, bytes.length - at);
            if (n <= 0) throw Object.assign(new Error(`checkpoint ${digest}: wrote ${at} of ${bytes.length} bytes`), { code: 'ENOSPC' });
            at += n;
          }
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        fs.renameSync(tmp, file);
      } catch (err) {
        // No temporary file outlives a failed write, and the round that needed it is not recorded.
        try {
          fs.rmSync(tmp, { force: true });
        } catch {
          // Not a file of ours (a folder in its place, say): the write's error is what counts.
        }
        throw err;
      }
      // The rename is durable before the round that names the file is recorded.
      const dir = fs.openSync(this.checkpointDir, 'r');
      try {
        fs.fsyncSync(dir);
      } finally {
        fs.closeSync(dir);
      }
    }
    return digest;
  }

  /** Loads a checkpoint, refusing one whose bytes do not match its digest. */
  readCheckpoint(digest: string): Checkpoint {
    const file = path.join(this.checkpointDir, digest);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch {
      throw new Error(`checkpoint ${digest}: missing from ${this.checkpointDir}`);
    }
    const got = sha256(bytes).toString('hex');
    if (got !== digest) throw new Error(`checkpoint ${digest}: corrupt (its bytes hash to ${got})`);
    return decodeCheckpoint(bytes);
  }

  /**
   * Records a completed round, the job's state and the nodes' records that the round changed in
   * one transaction: a crash keeps all of them or none (the round then runs again).
   */
  saveRound<R, G>(jobId: string, round: number, record: R, groups: G, checkpoint: string, nodes: readonly NodeRecord[] = []): void {
    this.db.transaction(() => {
      this.putNodes(nodes);
      this.db.prepare('INSERT INTO rounds (job_id, round, record, groups, checkpoint) VALUES (?, ?, ?, ?, ?)').run(jobId, round, JSON.stringify(record), JSON.stringify(groups), checkpoint);
      this.db.prepare('UPDATE jobs SET updated_ms = ? WHERE job_id = ?').run(Date.now(), jobId);
    })();
  }

  close(): void {
    this.db.close();
  }
}
