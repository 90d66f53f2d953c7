/**
 * Commit-reveal weights (CRv2 in pallet subtensor): `commit_weights(netuid, hash)` now,
 * `reveal_weights(netuid, uids, values, salt, version_key)` in epoch commit_epoch +
 * RevealPeriodEpochs. The hash is blake2b-256 of the SCALE encoding of
 * (hotkey AccountId32, netuid u16, uids Vec<u16>, values Vec<u16>, salt Vec<u16>, version_key u64).
 * Pending commits (with their salts) are kept in a JSON file, written atomically, so a
 * coordinator that restarts can still reveal. Mainnet's timelocked CRv4 is not supported (no
 * offline runtime can reveal it; see docs/scoring.md).
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ApiPromise } from '@polkadot/api';
import { blake2AsHex } from '@polkadot/util-crypto';
import { ChainRuleError } from './errors.js';
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

  remove(hash: string): void {
    this.write(this.list().filter((c) => c.hash !== hash));
  }
}

/** Commits `weights`; the salt and weights go to `store` before the extrinsic is sent. */
export async function commitWeights(api: ApiPromise, sender: ExtrinsicSender, store: PendingCommitStore, netuid: number, weights: U16Weights, versionKey: number): Promise<PendingCommit> {
  const salt = Array.from(randomBytes(16).reduce<number[]>((a, b, i, all) => (i % 2 ? a : [...a, all.readUInt16LE(i)]), []));
  const base = { netuid, hotkey: sender.signer.address, uids: weights.uids, values: weights.values, salt, versionKey };
  const pending: PendingCommit = { ...base, hash: commitHash(api, base), committedAt: new Date().toISOString() };
  store.add(pending);
  try {
    await sender.send(api.tx.subtensorModule!.commitWeights!(netuid, pending.hash), 'commit_weights');
  } catch (err) {
    store.remove(pending.hash);
    throw err;
  }
  return pending;
}

/** What happened to each pending commit. */
export interface RevealOutcome {
  hash: string;
  result: 'revealed' | 'too-early' | 'dropped';
  reason?: string;
}

/**
 * Reveals every pending commit of this hotkey that the chain will take now. Too early: kept
 * for the next call. Expired or unknown to the chain: dropped, with the reason.
 */
export async function revealPending(api: ApiPromise, sender: ExtrinsicSender, store: PendingCommitStore): Promise<RevealOutcome[]> {
  const out: RevealOutcome[] = [];
  for (const c of store.list().filter((p) => p.hotkey === sender.signer.address)) {
    try {
      await sender.send(api.tx.subtensorModule!.revealWeights!(c.netuid, c.uids, c.values, c.salt, c.versionKey), 'reveal_weights');
      store.remove(c.hash);
      out.push({ hash: c.hash, result: 'revealed' });
    } catch (err) {
      if (err instanceof ChainRuleError && err.runtimeError === 'RevealTooEarly') {
        out.push({ hash: c.hash, result: 'too-early', reason: err.message });
      } else if (err instanceof ChainRuleError) {
        store.remove(c.hash);
        out.push({ hash: c.hash, result: 'dropped', reason: err.message });
      } else {
        throw err;
      }
    }
  }
  return out;
}
