/**
 * Commit-reveal weights (CRv2 in pallet subtensor): `commit_weights(netuid, hash)` now,
 * `reveal_weights(netuid, uids, values, salt, version_key)` in epoch commit_epoch +
 * RevealPeriodEpochs. The hash is blake2b-256 of the SCALE encoding of
 * (hotkey AccountId32, netuid u16, uids Vec<u16>, values Vec<u16>, salt Vec<u16>, version_key u64).
 * Pending commits (with their salts) are kept in a JSON file, written atomically, so a
 * coordinator that restarts can still reveal. The timelocked kinds (CRv3, CRv4), which the
 * chain reveals itself, are in timelocked-commit.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ApiPromise } from '@polkadot/api';
import { blake2AsHex } from '@polkadot/util-crypto';
import { ChainRuleError } from './errors.js';
import { epochOf } from './subtensor.js';
import type { ExtrinsicSender } from './weights-publisher.js';
import type { U16Weights } from '../scoring/index.js';

/** A commit waiting for its reveal. */
export interface PendingCommit {
  netuid: number;
  hotkey: string;
  uids: number[];
  values: number[];
  salt: number[];
  versionKey: number;
  hash: string;
  committedAt: string;
  /** The block that included the commit, once known: the reveal window follows from it. */
  commitBlock?: number;
}

/** The commit hash the runtime checks a reveal against. */
export function commitHash(api: ApiPromise, c: Omit<PendingCommit, 'hash' | 'committedAt'>): string {
  const encoded = api.createType('(AccountId32, u16, Vec<u16>, Vec<u16>, Vec<u16>, u64)', [c.hotkey, c.netuid, c.uids, c.values, c.salt, c.versionKey]).toU8a();
  return blake2AsHex(encoded, 256);
}

/** Pending commits on disk. */
export class PendingCommitStore {
  constructor(readonly file: string) {}

  list(): PendingCommit[] {
    try {
      return JSON.parse(fs.readFileSync(this.file, 'utf8')) as PendingCommit[];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`pending commits ${this.file}: unreadable (${(err as Error).message})`);
    }
  }

  private write(all: PendingCommit[]): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    fs.writeFileSync(`${this.file}.tmp`, JSON.stringify(all, null, 1));
    fs.renameSync(`${this.file}.tmp`, this.file);
  }

  add(c: PendingCommit): void {
    this.write([...this.list(), c]);
  }

  update(hash: string, patch: Partial<PendingCommit>): void {
    this.write(this.list().map((c) => (c.hash === hash ? { ...c, ...patch } : c)));
  }

  remove(hash: string): void {
    this.write(this.list().filter((c) => c.hash !== hash));
  }
}

/**
 * Commits `weights`; the salt and weights go to `store` before the extrinsic is sent (a crash
 * cannot lose what the reveal needs), and the including block after.
 */
export async function commitWeights(api: ApiPromise, sender: ExtrinsicSender, store: PendingCommitStore, netuid: number, weights: U16Weights, versionKey: number): Promise<PendingCommit> {
  const bytes = randomBytes(16);
  const salt = Array.from({ length: 8 }, (_, i) => bytes.readUInt16LE(i * 2));
  const base = { netuid, hotkey: sender.signer.address, uids: weights.uids, values: weights.values, salt, versionKey };
  const pending: PendingCommit = { ...base, hash: commitHash(api, base), committedAt: new Date().toISOString() };
  store.add(pending);
  let blockHash: string;
  try {
    ({ blockHash } = await sender.send(api.tx.subtensorModule!.commitWeights!(netuid, pending.hash), 'commit_weights'));
  } catch (err) {
    store.remove(pending.hash);
    throw err;
  }
  const commitBlock = (await api.rpc.chain.getHeader(blockHash)).number.toNumber();
  store.update(pending.hash, { commitBlock });
  return { ...pending, commitBlock };
}

/** What happened to a pending commit. */
export interface RevealOutcome {
  hash: string;
  result: 'revealed' | 'waiting' | 'expired' | 'dropped';
  reason?: string;
}

/** Where the chain stands, as far as reveals need it. */
export interface RevealClock {
  block: number;
  tempo: number;
  revealPeriodEpochs: number;
}

/**
 * Reveals this hotkey's pending commits whose window is now: the epoch commit_epoch +
 * RevealPeriodEpochs (pallet subtensor's rule), and only then. Earlier: kept, nothing sent.
 * Later: expired, dropped without sending. A commit whose block was never learnt (a crash right
 * after sending) takes it from the chain's WeightCommits, or is dropped when the chain has none.
 */
export async function revealDue(api: ApiPromise, sender: ExtrinsicSender, store: PendingCommitStore, clock: RevealClock): Promise<RevealOutcome[]> {
  const out: RevealOutcome[] = [];
  for (const c of store.list().filter((p) => p.hotkey === sender.signer.address)) {
    let commitBlock = c.commitBlock;
    if (commitBlock === undefined) {
      const onChain = (await api.query.subtensorModule!.weightCommits!(c.netuid, c.hotkey)).toJSON() as [string, number, number, number][] | null;
      commitBlock = onChain?.find((e) => e[0] === c.hash)?.[1];
      if (commitBlock === undefined) {
        store.remove(c.hash);
        out.push({ hash: c.hash, result: 'dropped', reason: 'the chain holds no such commit (it was never included)' });
        continue;
      }
      store.update(c.hash, { commitBlock });
    }
    const due = epochOf(commitBlock, c.netuid, clock.tempo) + clock.revealPeriodEpochs;
    const now = epochOf(clock.block, c.netuid, clock.tempo);
    if (now < due) {
      out.push({ hash: c.hash, result: 'waiting', reason: `the reveal window is epoch ${due}; the chain is in epoch ${now}` });
      continue;
    }
    if (now > due) {
      store.remove(c.hash);
      out.push({ hash: c.hash, result: 'expired', reason: `its reveal window was epoch ${due}; the chain is in epoch ${now}` });
      continue;
    }
    try {
      await sender.send(api.tx.subtensorModule!.revealWeights!(c.netuid, c.uids, c.values, c.salt, c.versionKey), 'reveal_weights');
      store.remove(c.hash);
      out.push({ hash: c.hash, result: 'revealed' });
    } catch (err) {
      if (!(err instanceof ChainRuleError)) throw err;
      store.remove(c.hash);
      out.push({ hash: c.hash, result: 'dropped', reason: err.message });
    }
  }
  return out;
}
