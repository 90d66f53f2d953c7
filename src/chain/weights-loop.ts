/**
 * Weights on their own loop, off the training path. Every `pollMs` the loop makes sure it is
 * connected (reconnecting with backoff after an outage: training never waits for the chain),
 * reads the metagraph, lets timelocked commits' reveals be checked, and, once per tempo and
 * never inside the rate limit counted from the block that included the last setting, turns the
 * scoreboard into weights (src/scoring/weights.ts, the SDK's conversion) over every uid but the
 * validator's own, and sends them the way the subnet wants them:
 * - `set`: set_weights, when commit-reveal is off;
 * - `crv2`: commit_weights now, reveal_weights in the reveal epoch (and only then);
 * - `crv3` / `crv4`: timelocked commits that the chain reveals itself (timelocked-commit.ts).
 * Refusals a retry cannot cure (no permit, a max-weight limit, a version key) are said once
 * and not retried until what they depend on changes. `flush` publishes the final scores.
 */
import type { ApiPromise } from '@polkadot/api';
import type { KeyringPair } from '@polkadot/keyring/types';
import { connectSubtensor, readMetagraph, reasonOf, type Metagraph } from './subtensor.js';
import { ExtrinsicSender } from './weights-publisher.js';
import { commitWeights, PendingCommitStore, revealDue } from './commit-reveal.js';
import { commitTimelocked, revealOutcome, timelockedCall, type TimelockedCommit } from './timelocked-commit.js';
import { ChainRuleError } from './errors.js';
import { announceAxon, encodeIp } from './axon.js';
import { toU16Weights, type U16Weights } from '../scoring/index.js';
import type { Logger } from '../util/index.js';

/** How weights go on chain. */
export type WeightsMode = 'set' | 'crv2' | 'crv3' | 'crv4';

/** What one publication did. */
export interface Publication {
  /** The block that included the extrinsic. */
  block: number;
  mode: WeightsMode;
  uids: number[];
  values: number[];
  /** Scored nodes without a uid on the subnet. */
  unmapped: string[];
  /** The drand round a timelocked commit opens at. */
  revealRound?: number;
  /** CRv2 commits revealed since the previous publication. */
  revealed: number;
}

/** Scores by node id (a node's id is its hotkey's SS58 address on a chain). */
export type ScoreSource = () => ReadonlyMap<string, number>;

/** Options of {@link WeightsLoop}. */
export interface WeightsLoopOptions {
  url: string;
  netuid: number;
  signer: KeyringPair;
  scores: ScoreSource;
  log: Logger;
  /** Where CRv2 commits wait for their reveal (kept across restarts). */
  pendingCommitsFile: string;
  /** How often the loop looks at the chain (ms; default 6 s). */
  pollMs?: number;
  /** Force a mode instead of picking it from the runtime and the subnet (tests, old runtimes). */
  mode?: WeightsMode | 'auto';
  /** Seconds a block takes, for the reveal round of timelocked commits (default 12). */
  blockTimeSeconds?: number;
  /** Sees the subnet's metagraph whenever it is read. */
  onMetagraph?: (mg: Metagraph) => void;
  onPublication?: (p: Publication) => void;
  /** Sees the loop's state after each look at the chain (metrics). */
  onStatus?: (status: WeightsStatus) => void;
  /** The weights version key to send (default: the subnet's WeightsVersionKey). */
  versionKey?: number;
}

/** What the loop is doing, for status pages, logs and tests. */
export interface WeightsStatus {
  connected: boolean;
  mode: WeightsMode | null;
  uid: number | null;
  permit: boolean | null;
  lastPublication: Publication | null;
  /** Why the last attempt did not publish, if it did not. */
  waiting: string | null;
  /** Timelocked commits whose reveal failed, with the chain's reason. */
  revealFailures: { round: number; reason: string }[];
  revealsSeen: number;
  /** The endpoint the chain holds for this validator, once announced. */
  announced: string | null;
}

const BACKOFF_MAX_MS = 30_000;

export class WeightsLoop {
  private api: ApiPromise | null = null;
  private sender: ExtrinsicSender | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private backoffMs = 1000;
  private nextConnectAt = 0;
  private lastIncluded = -Infinity;
  private refusal: { key: string; message: string } | null = null;
  private said = new Set<string>();
  private readonly timelocked: TimelockedCommit[] = [];
  private readonly pending: PendingCommitStore;
  private readonly st: WeightsStatus = { connected: false, mode: null, uid: null, permit: null, lastPublication: null, waiting: 'not connected yet', revealFailures: [], revealsSeen: 0, announced: null };
  private revealedSince = 0;
  /** A flush found the final weights already on chain. */
  private flushed = false;
  /** The last look found something that waiting does not cure (no permit, say). */
  private blocked = false;

  constructor(private readonly o: WeightsLoopOptions) {
    this.pending = new PendingCommitStore(o.pendingCommitsFile);
  }

  private endpoint: { host: string; port: number } | null = null;

  /** Announces `host:port` with serve_axon from now on (again whenever the chain holds another). */
  announceEndpoint(host: string, port: number): void {
    encodeIp(host);
    this.endpoint = { host, port };
  }

  get hotkey(): string {
    return this.o.signer.address;
  }

  status(): WeightsStatus {
    return { ...this.st, revealFailures: [...this.st.revealFailures] };
  }

  /** Starts ticking; the first tick runs now. Never throws: the chain may be down. */
  start(): void {
    const tick = () => {
      if (this.closed) return;
      this.running = this.serialTick(false).catch((err) => this.o.log.warn('weights loop', { error: reasonOf(err) })).finally(() => {
        this.running = null;
        this.o.onStatus?.(this.status());
        if (!this.closed) this.timer = setTimeout(tick, this.o.pollMs ?? 6000);
      });
    };
    tick();
  }

  /**
   * Publishes the current scores as soon as the chain allows (the final scores of a job),
   * waiting up to `timeoutMs`; resolves with the publication, or null with the reason logged.
   */
  async flush(timeoutMs: number): Promise<Publication | null> {
    const deadline = Date.now() + timeoutMs;
    const before = this.st.lastPublication;
    this.flushed = false;
    while (!this.closed && Date.now() < deadline) {
      await this.running;
      await this.serialTick(true).catch((err) => this.o.log.warn('weights loop', { error: reasonOf(err) }));
      if (this.st.lastPublication !== before || this.flushed) return this.st.lastPublication;
      // Waiting cannot help: no permit, not registered, an unknown subnet, no scores, a refusal.
      if (this.refusal || this.blocked) break;
      await new Promise((r) => setTimeout(r, Math.min(this.o.pollMs ?? 6000, 2000)));
    }
    this.o.log.warn('final weights not published', { reason: this.refusal?.message ?? this.st.waiting ?? 'timed out' });
    return null;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.disconnect();
  }

  private async disconnect(): Promise<void> {
    const api = this.api;
    this.api = null;
    this.sender = null;
    this.st.connected = false;
    await api?.disconnect().catch(() => undefined);
  }

  /** Connected, or null while backing off after a failure. */
  private async connection(): Promise<{ api: ApiPromise; sender: ExtrinsicSender } | null> {
    if (this.api?.isConnected && this.sender) return { api: this.api, sender: this.sender };
    if (this.api) {
      this.o.log.warn('chain connection lost; reconnecting', { url: this.o.url });
      await this.disconnect();
    }
    if (Date.now() < this.nextConnectAt) return null;
    try {
      this.api = await connectSubtensor(this.o.url, { timeoutMs: 15_000 });
      this.sender = new ExtrinsicSender(this.api, this.o.signer);
      this.backoffMs = 1000;
      this.st.connected = true;
      this.o.log.info('chain connected', { url: this.o.url, netuid: this.o.netuid, hotkey: this.hotkey });
      return { api: this.api, sender: this.sender };
    } catch (err) {
      this.nextConnectAt = Date.now() + this.backoffMs;
      this.st.waiting = `${reasonOf(err)}; retrying in ${Math.round(this.backoffMs / 1000)} s`;
      this.o.log.warn('chain unreachable', { url: this.o.url, reason: reasonOf(err), retryInMs: this.backoffMs });
      this.backoffMs = Math.min(BACKOFF_MAX_MS, this.backoffMs * 2);
      return null;
    }
  }

  /** Says something once per distinct key (an operator's problem, not a log flood). */
  private once(key: string, message: string, fields: Record<string, unknown> = {}): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.o.log.warn(message, fields);
  }

  private mode(api: ApiPromise, mg: Metagraph): WeightsMode {
    if (this.o.mode && this.o.mode !== 'auto') return this.o.mode;
    if (!mg.hyperparams.commitRevealEnabled) return 'set';
    const call = timelockedCall(api);
    return call === 'crv3' ? 'crv3' : call ? 'crv4' : 'crv2';
  }

  private serial: Promise<void> = Promise.resolve();

  /** One look at the chain at a time: the timer's and a flush's never overlap. */
  private serialTick(force: boolean): Promise<void> {
    const next = this.serial.then(() => this.tick(force));
    this.serial = next.catch(() => undefined);
    return next;
  }

  private async tick(force: boolean): Promise<void> {
    this.blocked = false;
    const conn = await this.connection();
    if (!conn) return;
    const { api, sender } = conn;
    let mg: Metagraph;
    try {
      mg = await readMetagraph(api, this.o.netuid);
    } catch (err) {
      if (!api.isConnected) return this.disconnect();
      this.st.waiting = reasonOf(err);
      this.blocked = true;
      this.once(`metagraph:${reasonOf(err)}`, 'metagraph not read', { netuid: this.o.netuid, reason: reasonOf(err) });
      return;
    }
    this.o.onMetagraph?.(mg);
    const me = mg.neurons.find((n) => n.hotkey === this.hotkey);
    this.st.uid = me?.uid ?? null;
    this.st.permit = me?.validatorPermit ?? null;
    const mode = this.mode(api, mg);
    if (mode !== this.st.mode) this.o.log.info('weights mode', { mode, commitReveal: mg.hyperparams.commitRevealEnabled, revealPeriodEpochs: mg.hyperparams.revealPeriodEpochs });
    this.st.mode = mode;
    if (!me) {
      this.st.waiting = `hotkey ${this.hotkey} is not registered on subnet ${this.o.netuid}`;
      this.blocked = true;
      this.once(`unregistered:${mg.netuid}`, `${this.st.waiting}: register it (btcli subnet register --netuid ${this.o.netuid}); weights start once it is`);
      return;
    }
    if (this.endpoint) await this.announce(api, sender, mg, this.endpoint);
    await this.checkReveals(api, mg);
    if (mode === 'crv2') await this.revealCrv2(api, sender, mg);
    if (!me.validatorPermit) {
      this.st.waiting = `hotkey ${this.hotkey} (uid ${me.uid}) has no validator permit on subnet ${this.o.netuid}`;
      this.blocked = true;
      this.once(`permit:${me.uid}`, `${this.st.waiting}: only the top validators by stake have one; add stake (btcli stake add) and weights start once it does`);
      return;
    }
    const h = mg.hyperparams;
    const since = Math.max(this.lastIncluded, me.lastUpdate);
    const interval = Math.max(h.weightsSetRateLimit, force ? 0 : h.tempo);
    if (mg.block - since < interval) {
      this.st.waiting = `next weights at block ${since + interval} (now ${mg.block}; ${force ? 'rate limit' : 'once per tempo'})`;
      return;
    }
    const { weights, unmapped } = this.weights(mg, me.uid);
    if (!weights) {
      this.st.waiting = 'no node has a score above zero yet';
      this.blocked = true;
      return;
    }
    if (weights.uids.length < Math.min(h.minAllowedWeights, mg.neurons.length)) {
      this.blocked = true;
      this.st.waiting = `subnet ${this.o.netuid} has ${mg.neurons.length} neurons and MinAllowedWeights ${h.minAllowedWeights}: weights would have to include this validator's own uid, which it never weights`;
      this.once(`minallowed:${h.minAllowedWeights}:${mg.neurons.length}`, this.st.waiting);
      return;
    }
    // The final scores already stand on chain: nothing to flush.
    const last = this.st.lastPublication;
    if (force && last && last.mode === mode && JSON.stringify([last.uids, last.values]) === JSON.stringify([weights.uids, weights.values])) {
      this.flushed = true;
      return;
    }
    // A refusal a retry cannot cure waits until something it depends on changes.
    const key = JSON.stringify([mode, h, weights]);
    if (this.refusal?.key === key) {
      this.st.waiting = this.refusal.message;
      return;
    }
    this.refusal = null;
    const versionKey = this.o.versionKey ?? h.weightsVersionKey;
    try {
      let block: number;
      let revealRound: number | undefined;
      if (mode === 'set') {
        const { blockHash } = await sender.send(api.tx.subtensorModule!.setWeights!(this.o.netuid, weights.uids, weights.values, versionKey), 'set_weights');
        block = (await api.rpc.chain.getHeader(blockHash)).number.toNumber();
      } else if (mode === 'crv2') {
        block = (await commitWeights(api, sender, this.pending, this.o.netuid, weights, versionKey)).commitBlock!;
      } else {
        const c = await commitTimelocked(api, sender, { netuid: this.o.netuid, uid: me.uid, w: weights, versionKey, block: mg.block, tempo: h.tempo, revealPeriodEpochs: h.revealPeriodEpochs, blockTimeSeconds: this.o.blockTimeSeconds ?? 12 });
        this.timelocked.push(c);
        block = c.commitBlock;
        revealRound = c.round;
      }
      this.lastIncluded = block;
      const p: Publication = { block, mode, uids: weights.uids, values: weights.values, unmapped, revealed: this.revealedSince, ...(revealRound !== undefined ? { revealRound } : {}) };
      this.revealedSince = 0;
      this.st.lastPublication = p;
      this.st.waiting = null;
      this.o.log.info(mode === 'set' ? 'weights set' : 'weights committed', { mode, block, uids: p.uids.length, unmapped: unmapped.length, ...(revealRound ? { revealRound } : {}) });
      this.o.onPublication?.(p);
    } catch (err) {
      if (!api.isConnected) return this.disconnect();
      const message = reasonOf(err);
      this.st.waiting = message;
      const transient = !(err instanceof ChainRuleError) || /TooFast|TooEarly/.test(err.runtimeError);
      if (transient) this.o.log.warn('weights not set', { error: message });
      else {
        this.refusal = { key, message: `${message}; not retried until the subnet's rules, the weights or this hotkey's standing change` };
        this.o.log.warn('weights refused', { error: this.refusal.message });
      }
    }
  }

  /** Announces the endpoint when the chain holds another one for this hotkey. */
  private async announce(api: ApiPromise, sender: ExtrinsicSender, mg: Metagraph, want: { host: string; port: number }): Promise<void> {
    const held = (await api.query.subtensorModule!.axons!(this.o.netuid, this.hotkey)).toJSON() as { ip: number | string; port: number; ipType: number } | null;
    const { ip, ipType } = encodeIp(want.host);
    const wanted = ipType === 6 ? `[${want.host}]:${want.port}` : `${want.host}:${want.port}`;
    if (held && BigInt(held.ip) === ip && Number(held.ipType) === ipType && Number(held.port) === want.port) {
      this.st.announced = wanted;
      return;
    }
    try {
      await announceAxon(api, sender, this.o.netuid, want.host, want.port);
      this.st.announced = wanted;
      this.o.log.info('endpoint announced on chain', { endpoint: wanted, netuid: this.o.netuid, block: mg.block });
    } catch (err) {
      this.once(`announce:${reasonOf(err)}`, 'endpoint not announced', { endpoint: wanted, error: reasonOf(err) });
    }
  }

  /** The weights of the scores over every uid but this validator's; null when none is above 0. */
  private weights(mg: Metagraph, self: number): { weights: U16Weights | null; unmapped: string[] } {
    const scores = this.o.scores();
    const byHotkey = new Map(mg.neurons.map((n) => [n.hotkey, n.uid]));
    const unmapped = [...scores.keys()].filter((id) => !byHotkey.has(id));
    const byUid = new Map(mg.neurons.filter((n) => n.uid !== self).map((n) => [n.uid, Math.max(0, scores.get(n.hotkey) ?? 0)]));
    if (![...byUid.values()].some((v) => v > 0)) return { weights: null, unmapped };
    return { weights: toU16Weights(byUid, { maxWeightsLimit: mg.hyperparams.maxWeightsLimit, minAllowedWeights: mg.hyperparams.minAllowedWeights }), unmapped };
  }

  private async revealCrv2(api: ApiPromise, sender: ExtrinsicSender, mg: Metagraph): Promise<void> {
    if (this.pending.list().length === 0) return;
    const h = mg.hyperparams;
    let outcomes;
    try {
      outcomes = await revealDue(api, sender, this.pending, { block: mg.block, tempo: h.tempo, revealPeriodEpochs: h.revealPeriodEpochs });
    } catch (err) {
      this.o.log.warn('reveal not sent', { error: reasonOf(err) });
      return;
    }
    for (const o of outcomes) {
      if (o.result === 'revealed') {
        this.revealedSince++;
        this.st.revealsSeen++;
        this.o.log.info('weights revealed', { hash: o.hash, block: mg.block });
      } else if (o.result !== 'waiting') {
        this.o.log.warn(`commit ${o.result}`, { hash: o.hash, reason: o.reason });
      }
    }
  }

  /** Timelocked commits past their reveal block: revealed, or the chain's reason they were not. */
  private async checkReveals(api: ApiPromise, mg: Metagraph): Promise<void> {
    for (const c of this.timelocked.filter((t) => mg.block > t.revealBlock)) {
      this.timelocked.splice(this.timelocked.indexOf(c), 1);
      const outcome = await revealOutcome(api, c);
      if (outcome.revealed) {
        this.st.revealsSeen++;
        this.o.log.info('timelocked weights revealed by the chain', { round: c.round, revealBlock: c.revealBlock });
      } else {
        this.st.revealFailures.push({ round: c.round, reason: outcome.reason });
        this.o.log.warn('timelocked weights not revealed', { round: c.round, revealBlock: c.revealBlock, reason: outcome.reason });
      }
    }
  }
}
