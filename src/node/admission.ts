/**
 * Who may call a server as which role, once requests are signed (wire/auth.ts):
 *
 * - an allowlist file: one SS58 address a line, optionally followed by the roles it may act as
 *   (`trainer`, `dataset`, `researcher`; none listed: all), `#` starts a comment;
 * - the subnet's metagraph, when a chain is configured: a hotkey registered on the subnet may
 *   act as a trainer or dataset node (researchers still need the allowlist).
 *
 * With both, either admits. Methods any node may call (heartbeats, scores, status) ask for the
 * role `node`: a trainer or a dataset node.
 */
import fs from 'node:fs';
import { decodeAddress, encodeAddress } from '@polkadot/util-crypto';
import { ConfigError, NotAdmittedError } from '../errors.js';
import type { Admission } from '../wire/index.js';

export const ROLES = ['trainer', 'dataset', 'researcher'] as const;
export type Role = (typeof ROLES)[number] | 'node';

const satisfies = (granted: ReadonlySet<string>, role: string) => granted.has(role) || (role === 'node' && (granted.has('trainer') || granted.has('dataset')));

/** Admission by an allowlist file (read once, at start). */
export class AllowlistAdmission implements Admission {
  readonly entries = new Map<string, ReadonlySet<string>>();

  constructor(readonly file: string) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError('allowlist', 'a readable allowlist file', `${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) return;
      const [address, ...roles] = line.split(/[\s,]+/);
      let normal: string;
      try {
        normal = encodeAddress(decodeAddress(address), 42);
      } catch {
        throw new ConfigError('allowlist', 'an SS58 address at the start of each line', `${JSON.stringify(address)} on line ${i + 1} of ${file}`);
      }
      for (const r of roles) {
        if (!(ROLES as readonly string[]).includes(r)) throw new ConfigError('allowlist', `roles among ${ROLES.join(', ')}`, `${JSON.stringify(r)} on line ${i + 1} of ${file}`);
      }
      this.entries.set(normal, new Set(roles.length ? roles : ROLES));
    });
  }

  admits(address: string, role: string): boolean {
    const granted = this.entries.get(address);
    return granted !== undefined && satisfies(granted, role);
  }

  check(address: string, role: string): void {
    if (!this.admits(address, role)) throw new NotAdmittedError(address, role, this.entries.has(address) ? `the allowlist ${this.file} gives it other roles` : `not in the allowlist ${this.file}`);
  }
}

/** Admission by the subnet's registered hotkeys (kept fresh by whoever reads the metagraph). */
export class MetagraphAdmission implements Admission {
  private hotkeys = new Set<string>();
  private block = -1;

  constructor(readonly netuid: number) {}

  /** Replaces the registered hotkeys with those of the metagraph at `block`. */
  update(hotkeys: Iterable<string>, block: number): void {
    this.hotkeys = new Set([...hotkeys].map((h) => encodeAddress(decodeAddress(h), 42)));
    this.block = block;
  }

  admits(address: string, role: string): boolean {
    return role !== 'researcher' && this.hotkeys.has(address);
  }

  check(address: string, role: string): void {
    if (!this.admits(address, role)) {
      throw new NotAdmittedError(address, role, role === 'researcher' ? 'researchers are admitted by the allowlist only' : `not registered on subnet ${this.netuid} (metagraph at block ${this.block})`);
    }
  }
}

/** Either of several admissions. */
export class AnyAdmission implements Admission {
  constructor(private readonly parts: (AllowlistAdmission | MetagraphAdmission)[]) {}

  check(address: string, role: string): void {
    const reasons: string[] = [];
    for (const p of this.parts) {
      try {
        p.check(address, role);
        return;
      } catch (err) {
        reasons.push((err as NotAdmittedError).why);
      }
    }
    throw new NotAdmittedError(address, role, reasons.join('; '));
  }
}
