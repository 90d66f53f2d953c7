/**
 * Finding the subnet's validators on chain: every `refreshMs` read the metagraph
 * (`getNeuronsLite`), keep each neuron with a validator permit and a usable announced endpoint,
 * apply the operator's pins and exclusions, and report the set when it changes. A trainer
 * shares its capacity among them in proportion to their stake; a dataset node registers with
 * each. An unreachable chain, a wrong netuid and garbage axon info are said (once each) and the
 * set already known is kept.
 */
import { connectSubtensor, readNeuronEndpoints, axonAddress, reasonOf } from '../chain/index.js';
import type { ApiPromise } from '@polkadot/api';
import { withDeadline, DeadlineError, type Logger } from '../util/index.js';

/** How long one look at the metagraph may take before the connection is dropped and made again. */
const NEURONS_DEADLINE_MS = 30_000;

/** A validator to work for. */
export interface Validator {
  hotkey: string;
  uid: number;
  /** host:port of its coordinator, as announced with serve_axon. */
  address: string;
  stake: bigint;
  /** Its part of this node's capacity (stake-proportional among the chosen; sums to 1). */
  share: number;
}

/** Options of {@link ValidatorWatch}. */
export interface ValidatorWatchOptions {
  url: string;
  netuid: number;
  log: Logger;
  /** Only these hotkeys (empty: every validator). */
  pin?: readonly string[];
  /** Never these hotkeys. */
  exclude?: readonly string[];
  /** Never this node's own hotkey (a validator that also mines does not work for itself). */
  self?: string;
  refreshMs?: number;
  onChange: (validators: readonly Validator[]) => void;
  /** Sees every registered hotkey of the subnet at each look (peers a trainer accepts in a group). */
  onNeurons?: (hotkeys: ReadonlySet<string>) => void;
}

/** The validators among `neurons`, with their shares, and why the others were left out. */
export function chooseValidators(neurons: Awaited<ReturnType<typeof readNeuronEndpoints>>, o: Pick<ValidatorWatchOptions, 'pin' | 'exclude' | 'self'>): { validators: Validator[]; skipped: { hotkey: string; reason: string }[] } {
  const skipped: { hotkey: string; reason: string }[] = [];
  const chosen: Omit<Validator, 'share'>[] = [];
  for (const n of neurons) {
    if (!n.validatorPermit) continue;
    if (n.hotkey === o.self) continue;
    if (o.pin?.length && !o.pin.includes(n.hotkey)) continue;
    if (o.exclude?.includes(n.hotkey)) continue;
    const at = axonAddress(n.axon);
    if ('unusable' in at) {
      skipped.push({ hotkey: n.hotkey, reason: at.unusable });
      continue;
    }
    chosen.push({ hotkey: n.hotkey, uid: n.uid, address: at.address, stake: n.stake });
  }
  const total = chosen.reduce((s, v) => s + v.stake, 0n);
  const validators = chosen.map((v) => ({ ...v, share: total > 0n ? Number((v.stake * 1_000_000n) / total) / 1_000_000 : 1 / chosen.length }));
  return { validators, skipped };
}

/** Watches the chain for the subnet's validators. */
export class ValidatorWatch {
  private api: ApiPromise | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private current = '';
  private readonly said = new Set<string>();

  constructor(private readonly o: ValidatorWatchOptions) {}

  start(): void {
    const tick = () => {
      if (this.closed) return;
      this.running = this.refresh().finally(() => {
        this.running = null;
        if (!this.closed) this.timer = setTimeout(tick, this.o.refreshMs ?? 60_000);
      });
    };
    tick();
  }

  private once(key: string, message: string, fields: Record<string, unknown>): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.o.log.warn(message, fields);
  }

  private async refresh(): Promise<void> {
    try {
      if (!this.api?.isConnected) {
        await this.api?.disconnect().catch(() => undefined);
        this.api = await connectSubtensor(this.o.url, { timeoutMs: 15_000 });
      }
      // A node that stops answering must not stall the watch: give up, reconnect at the next look.
      const neurons = await withDeadline(readNeuronEndpoints(this.api, this.o.netuid), NEURONS_DEADLINE_MS, `getNeuronsLite on ${this.o.url}`).catch(async (err: unknown) => {
        if (err instanceof DeadlineError) {
          const api = this.api;
          this.api = null;
          await api?.disconnect().catch(() => undefined);
        }
        throw err;
      });
      this.o.onNeurons?.(new Set(neurons.map((n) => n.hotkey)));
      const { validators, skipped } = chooseValidators(neurons, this.o);
      for (const s of skipped) this.once(`skip:${s.hotkey}:${s.reason}`, 'validator left out: its announced endpoint is unusable', s);
      const key = JSON.stringify(validators.map((v) => [v.hotkey, v.address, v.share]));
      if (key !== this.current) {
        this.current = key;
        if (validators.length === 0) this.once(`none:${this.o.netuid}`, 'no validator with a permit and an announced endpoint on the subnet yet; looking again at each refresh', { netuid: this.o.netuid });
        this.o.log.info('validators', { netuid: this.o.netuid, validators: validators.map((v) => ({ hotkey: v.hotkey, address: v.address, share: v.share })) });
        this.o.onChange(validators);
      }
    } catch (err) {
      this.once(`chain:${reasonOf(err)}`, 'validators not read; keeping the ones known', { url: this.o.url, netuid: this.o.netuid, reason: reasonOf(err) });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.api?.disconnect().catch(() => undefined);
  }
}
