/**
 * The coordinator half of SecAgg+ for one group: it relays keys and shares, folds masked
 * inputs into one running sum modulo 2^32 as they arrive (an individual masked input is never
 * kept), and at UNMASK reconstructs each survivor's self-mask seed and each dropped node's mask
 * key from t shares, removes those masks, and dequantizes. It never asks a node for both
 * secrets of the same owner, and a secret reconstructed from bad shares is caught (a mask key
 * must match its advertised public key).
 *
 *   ADVERTISE_KEYS --closeStage--> SHARE_KEYS --closeStage--> MASKED_INPUT --closeStage-->
 *   CONSISTENCY --closeStage--> UNMASK --finish--> DONE
 *   any close with fewer than t members left -> FAILED
 *
 * In CONSISTENCY each survivor signs the survivor set; the signatures go out with the unmask
 * request, and members unmask only with t of them over the set they signed (node.ts).
 *
 * Members that miss a stage (deadline, lost heartbeats) drop out of the following stages.
 */
import { verifySignature, agree, agreementPublicKey, combineShares, applyMasks, type Mask } from '../crypto/index.js';
import type { MaskPool } from './mask-pool.js';
import { FileSum, MemorySum, type SumWords } from './group-sum.js';
import {
  CorruptShareError, CorruptUnmaskShareError, PartialInputError, DuplicateMessageError, ForgedAdvertisementError, GroupBelowThresholdError, InvalidFieldError, NotAMemberError, StageError,
  UpdateLengthError,
} from '../errors.js';
import {
  SHARE_BYTES, advertisementMessage, dealtShareMessage, pairwiseSeed, pairwiseSign, survivorSetMessage, type SurvivorSet, type SurvivorSignature, type EncryptedShare, type GroupState, type KeyAdvertisement, type SecAggParams, type Stage,
  type UnmaskRequest, type UnmaskShare,
} from './constants.js';
import { neighbourGraph } from './graph.js';
import { dequantizeSum } from './quantize.js';

/** A masked input of `length` words, read as consecutive pieces. */
export interface MaskedInput {
  length: number;
  pieces: () => Iterable<Uint32Array>;
  /**
   * The input's bytes as they are held in memory, given up to the group (its caller must not
   * use them afterwards) with what to call once they are in the sum (or refused), or null when
   * they are not in memory (read back from disk by `pieces`).
   */
  chunks?: () => { chunks: Uint8Array[]; done: () => void } | null;
  /**
   * The file the input's bytes are in, given up to the group likewise (read and added in a mask
   * thread), with what to call once they are in the sum (or refused); null when there is none.
   */
  file?: () => { path: string; bytes: number; done: () => void } | null;
}

/**
 * A masked input's bytes given up to a mask thread, which adds them into `sum` (in shared memory
 * or in its file): its chunks in memory, or the file it was spooled to; null when it offers
 * neither (read back by `pieces`).
 */
function handOver(input: MaskedInput, pool: MaskPool, sum: SumWords): { bytes: number; add: () => Promise<void>; done: () => void } | null {
  // Into shared memory, or into the sum's file (read, added and written back in the thread).
  const into = (source: readonly Uint8Array[] | string) => sum instanceof FileSum
    ? pool.foldIntoFile(sum.path, sum.length, source)
    : typeof source === 'string' ? pool.foldFile(sum.load(), source) : pool.fold(sum.load(), source);
  const held = input.chunks?.();
  if (held) return { bytes: held.chunks.reduce((n, c) => n + c.length, 0), add: () => into(held.chunks), done: held.done };
  const file = input.file?.();
  if (file) return { bytes: file.bytes, add: () => into(file.path), done: file.done };
  return null;
}

/** What an unmasked group yields. */
export interface GroupResult {
  groupId: string;
  /** Sum over survivors of numSamples_i * update_i. */
  weightedSum: Float32Array;
  /** Sum over survivors of numSamples_i. */
  totalWeight: number;
  /** The largest magnitude in `weightedSum`, and the sum of its squares (the plausibility check's). */
  maxAbs: number;
  sumSquares: number;
  /** Whose inputs are in the sum. */
  members: string[];
  /** Members that revealed a corrupted, forged or short share: their sum is aggregated, never scored in their favour. */
  culprits: string[];
}

/** One group's coordinator state. */
export class SecAggGroup {
  private state: GroupState = 'ADVERTISE_KEYS';
  private readonly graph: Map<string, Set<string>>;
  /** Members still expected to act in the current stage. */
  private active: Set<string>;
  private readonly ads = new Map<string, KeyAdvertisement>();
  private readonly shares = new Map<string, EncryptedShare[]>();
  /** Senders of shares (U2), survivors of masked input (U3). */
  private u2 = new Set<string>();
  private u3 = new Set<string>();
  private readonly inputs = new Set<string>();
  private readonly reveals = new Map<string, UnmaskShare[]>();
  /** Members that revealed a share that is not the one dealt to them (named in the round's result). */
  private readonly culprits = new Set<string>();
  /** CONSISTENCY: survivors' signatures over the survivor set. */
  private readonly consistency = new Map<string, SurvivorSignature>();
  private readonly sum: SumWords;
  /** Additions of inputs into the sum in a mask thread, in order; and how many are under way. */
  private folding: Promise<void> = Promise.resolve();
  private foldsPending = 0;
  /** What `release` was asked while additions were under way (done once they end). */
  private releaseAsked: boolean | null = null;
  private failure: GroupBelowThresholdError | CorruptShareError | PartialInputError | null = null;
  /** Masks expanded at unmask (self masks of survivors, pairwise masks of dropped nodes). */
  masksRemoved = 0;

  /** `sum`: where the running sum lives (shared memory when not given; a file, `group-sum.ts`). */
  constructor(readonly params: SecAggParams, private readonly identities: ReadonlyMap<string, Uint8Array>, sum?: SumWords) {
    this.graph = neighbourGraph(params.members, params.neighbours, params.seed);
    this.active = new Set(params.members);
    // Shared memory (or a file read into it at unmask), so mask threads can unmask it in place.
    this.sum = sum ?? new MemorySum(params.vectorLength);
    if (this.sum.length !== params.vectorLength) throw new RangeError(`group ${params.groupId}: expected a sum of ${params.vectorLength} words, got ${this.sum.length}`);
  }

  get groupId(): string {
    return this.params.groupId;
  }

  /** Current stage, DONE or FAILED. */
  get stage(): GroupState {
    return this.state;
  }

  /** Why the group failed, if it did. */
  get error(): GroupBelowThresholdError | CorruptShareError | PartialInputError | null {
    return this.failure;
  }

  /** Members still taking part. */
  get remaining(): ReadonlySet<string> {
    return this.active;
  }

  /** True when every remaining member has sent this stage's message. */
  get stageComplete(): boolean {
    const got = this.received();
    for (const m of this.active) if (!got.has(m)) return false;
    return true;
  }

  /** Remaining members that have not sent this stage's message (sorted). */
  get waitingFor(): string[] {
    const got = this.received();
    return [...this.active].filter((m) => !got.has(m)).sort();
  }

  private received(): ReadonlySet<string> {
    switch (this.state) {
      case 'ADVERTISE_KEYS': return new Set(this.ads.keys());
      case 'SHARE_KEYS': return new Set(this.shares.keys());
      case 'MASKED_INPUT': return this.inputs;
      case 'CONSISTENCY': return new Set(this.consistency.keys());
      case 'UNMASK': return new Set(this.reveals.keys());
      default: return new Set(this.active);
    }
  }

  private expect(stage: Stage, nodeId: string): void {
    if (this.state !== stage) throw new StageError(`group ${this.groupId}`, this.state, stage);
    if (!this.params.members.includes(nodeId)) throw new NotAMemberError(nodeId, this.groupId, 'is not a member');
    if (!this.active.has(nodeId)) throw new NotAMemberError(nodeId, this.groupId, `dropped out before ${stage}`);
  }

  /** True once `nodeId` advertised its keys. */
  hasAdvertised(nodeId: string): boolean {
    return this.ads.has(nodeId);
  }

  /** A member left (lost heartbeats): it is no longer expected in any stage. */
  drop(nodeId: string): void {
    this.active.delete(nodeId);
  }

  /** ADVERTISE_KEYS: checks the signature against the registered identity key, then keeps it. */
  receiveAdvertisement(nodeId: string, ad: KeyAdvertisement): void {
    this.expect('ADVERTISE_KEYS', nodeId);
    if (this.ads.has(nodeId)) throw new DuplicateMessageError(this.groupId, 'ADVERTISE_KEYS', nodeId);
    if (ad.nodeId !== nodeId) throw new InvalidFieldError('advertisement.node_id', JSON.stringify(nodeId), JSON.stringify(ad.nodeId));
    const known = this.identities.get(nodeId);
    if (!known || !Buffer.from(known).equals(ad.identityKey)) throw new ForgedAdvertisementError(nodeId, 'its identity key is not the one registered');
    if (ad.encKey.length !== 32 || ad.maskKey.length !== 32) throw new InvalidFieldError('advertisement keys', '32 bytes each', `${ad.encKey.length} and ${ad.maskKey.length}`);
    // Checked by the peers, against hotkeys the coordinator does not hold; here only its size.
    if (ad.hotkeySignature.length !== 0 && ad.hotkeySignature.length !== 64) throw new InvalidFieldError('advertisement.hotkey_signature', '64 bytes (sr25519) or none', `${ad.hotkeySignature.length} bytes`);
    if (!verifySignature(ad.identityKey, advertisementMessage(this.params, ad), ad.signature)) throw new ForgedAdvertisementError(nodeId, 'the signature does not verify');
    this.ads.set(nodeId, ad);
  }

  /** What `nodeId` needs for SHARE_KEYS: its neighbours' advertisements. */
  advertisementsFor(nodeId: string): KeyAdvertisement[] {
    this.expectAfter('SHARE_KEYS');
    return [...this.graph.get(nodeId) ?? []].filter((j) => this.ads.has(j)).sort().map((j) => this.ads.get(j)!);
  }

  /** SHARE_KEYS: the sealed shares `nodeId` made, one per advertised neighbour. */
  receiveShares(nodeId: string, shares: readonly EncryptedShare[]): void {
    this.expect('SHARE_KEYS', nodeId);
    if (this.shares.has(nodeId)) throw new DuplicateMessageError(this.groupId, 'SHARE_KEYS', nodeId);
    const seen = new Set<string>();
    for (const s of shares) {
      if (s.from !== nodeId) throw new InvalidFieldError('shares.from', JSON.stringify(nodeId), JSON.stringify(s.from));
      if (!this.graph.get(nodeId)!.has(s.to) || !this.ads.has(s.to)) throw new InvalidFieldError('shares.to', `a neighbour of ${nodeId} that advertised`, JSON.stringify(s.to));
      if (seen.has(s.to)) throw new InvalidFieldError('shares.to', 'each neighbour once', `${s.to} twice`);
      seen.add(s.to);
    }
    this.shares.set(nodeId, [...shares]);
  }

  /** What `nodeId` needs for MASKED_INPUT: the shares sealed for it by neighbours that shared. */
  sharesFor(nodeId: string): EncryptedShare[] {
    this.expectAfter('MASKED_INPUT');
    const out: EncryptedShare[] = [];
    for (const from of this.u2) for (const s of this.shares.get(from)!) if (s.to === nodeId) out.push(s);
    return out;
  }

  /**
   * MASKED_INPUT: folds a masked input into the running sum (mod 2^32); it is not kept. The
   * input is `length` words, given whole or as consecutive pieces (read back from disk, say), so
   * that no whole input need be in memory. A piece source that fails part-way has left part of
   * the input in the sum, which nothing can take out: the group fails, naming why.
   *
   * With `pool`, an input held in memory (`chunks`) whose group sum is in shared memory is added
   * in a mask thread, off the event loop: it counts as received at once, and the group's
   * additions run one after another; unmasking and `maskedSum` wait for them ({@link folded}).
   */
  receiveMaskedInput(nodeId: string, y: Uint32Array | MaskedInput, pool?: MaskPool): void {
    this.expect('MASKED_INPUT', nodeId);
    if (this.inputs.has(nodeId)) throw new DuplicateMessageError(this.groupId, 'MASKED_INPUT', nodeId);
    const input: MaskedInput = ArrayBuffer.isView(y) ? { length: y.length, pieces: () => [y] } : y;
    if (input.length !== this.params.vectorLength) throw new UpdateLengthError(this.params.vectorLength - 1, input.length - 1);
    const s = this.sum;
    const taken = pool ? handOver(input, pool, s) : null;
    if (taken) {
      const { bytes, add, done } = taken;
      if (bytes !== s.length * 4) {
        done();
        throw new UpdateLengthError(s.length - 1, Math.floor(bytes / 4) - 1);
      }
      this.inputs.add(nodeId);
      this.foldsPending++;
      this.folding = this.folding.then(add).catch((err: unknown) => {
        // Part of the input may be in the sum: nothing can take it out.
        if (this.state !== 'FAILED') {
          this.state = 'FAILED';
          this.failure = new PartialInputError(this.groupId, nodeId, (err as Error).message);
        }
      }).finally(() => {
        done();
        if (--this.foldsPending === 0 && this.releaseAsked !== null) this.sum.release(this.releaseAsked);
      });
      return;
    }
    let at = 0;
    try {
      for (const piece of input.pieces()) {
        if (at + piece.length > s.length) throw new UpdateLengthError(s.length - 1, at + piece.length - 1);
        s.add(piece, at);
        at += piece.length;
      }
      if (at !== s.length) throw new UpdateLengthError(s.length - 1, at - 1);
    } catch (err) {
      if (at > 0) {
        this.state = 'FAILED';
        this.failure = new PartialInputError(this.groupId, nodeId, (err as Error).message);
      }
      throw err;
    }
    this.inputs.add(nodeId);
  }

  private survivors(): SurvivorSet {
    return { survivors: [...this.u3].sort(), dropped: [...this.u2].filter((m) => !this.u3.has(m)).sort() };
  }

  /** What the coordinator tells survivors in CONSISTENCY: the set each is to sign. */
  survivorSet(): SurvivorSet {
    this.expectAfter('CONSISTENCY');
    return this.survivors();
  }

  /** CONSISTENCY: a survivor's signature over the survivor set, checked against its identity key. */
  receiveConsistency(nodeId: string, sig: SurvivorSignature): void {
    this.expect('CONSISTENCY', nodeId);
    if (this.consistency.has(nodeId)) throw new DuplicateMessageError(this.groupId, 'CONSISTENCY', nodeId);
    if (sig.nodeId !== nodeId) throw new InvalidFieldError('consistency.node_id', JSON.stringify(nodeId), JSON.stringify(sig.nodeId));
    if (sig.hotkeySignature.length !== 0 && sig.hotkeySignature.length !== 64) throw new InvalidFieldError('consistency.hotkey_signature', '64 bytes (sr25519) or none', `${sig.hotkeySignature.length} bytes`);
    const key = this.identities.get(nodeId);
    if (!key || !verifySignature(key, survivorSetMessage(this.params, this.survivors()), sig.signature)) {
      throw new InvalidFieldError('consistency.signature', `${nodeId}'s identity-key signature over the survivor set`, 'one that does not verify');
    }
    this.consistency.set(nodeId, sig);
  }

  /** What the coordinator asks survivors in UNMASK: the set and the survivors' signatures over it. */
  unmaskRequest(): UnmaskRequest {
    this.expectAfter('UNMASK');
    return { ...this.survivors(), signatures: [...this.consistency.values()] };
  }

  /** UNMASK: a survivor's revealed shares; each must be of the kind the request asked for. */
  receiveUnmask(nodeId: string, reveals: readonly UnmaskShare[]): void {
    this.expect('UNMASK', nodeId);
    if (this.reveals.has(nodeId)) throw new DuplicateMessageError(this.groupId, 'UNMASK', nodeId);
    const seen = new Set<string>();
    for (const r of reveals) {
      const wanted = this.u3.has(r.owner) ? 'self-seed' : this.u2.has(r.owner) ? 'mask-key' : null;
      if (wanted === null || !this.graph.get(nodeId)!.has(r.owner)) {
        throw new InvalidFieldError('unmask.owner', `a neighbour of ${nodeId} that shared keys`, JSON.stringify(r.owner));
      }
      if (r.kind !== wanted) throw new InvalidFieldError(`unmask share of ${r.owner}`, wanted, r.kind);
      if (seen.has(r.owner)) throw new InvalidFieldError('unmask.owner', 'each owner once', `${r.owner} twice`);
      seen.add(r.owner);
      // The share must be the one its owner dealt to this member: a corrupted one is refused
      // here, its sender named, and the group rebuilds the secret from t good shares of others.
      if (r.share.length !== SHARE_BYTES) {
        this.culprits.add(nodeId);
        throw new CorruptUnmaskShareError(this.groupId, nodeId, r.owner, `${r.share.length} bytes, not ${SHARE_BYTES}`);
      }
      const dealer = this.identities.get(r.owner);
      if (!dealer || !r.dealerSignature || !verifySignature(dealer, dealtShareMessage(this.params, r.owner, nodeId, r.kind, r.share), r.dealerSignature)) {
        this.culprits.add(nodeId);
        throw new CorruptUnmaskShareError(this.groupId, nodeId, r.owner, 'a share its owner\'s signature does not cover');
      }
    }
    this.reveals.set(nodeId, [...reveals]);
  }

  private expectAfter(stage: Stage): void {
    // As for messages: the stage the group is in, then the one asked about.
    if (this.state !== stage) throw new StageError(`group ${this.groupId}`, this.state, stage);
  }

  private fail(stage: string, have: number): false {
    this.state = 'FAILED';
    this.failure = new GroupBelowThresholdError(this.groupId, stage, have, this.params.threshold);
    return false;
  }

  /**
   * Ends the current stage (everyone answered, or its deadline passed): members that did not
   * answer drop out. Returns false, and the group is FAILED, when fewer than t remain.
   * UNMASK ends with {@link finish} instead.
   */
  closeStage(): boolean {
    const t = this.params.threshold;
    switch (this.state) {
      case 'ADVERTISE_KEYS': {
        this.active = new Set([...this.active].filter((m) => this.ads.has(m)));
        if (this.active.size < t) return this.fail('ADVERTISE_KEYS', this.active.size);
        this.state = 'SHARE_KEYS';
        return true;
      }
      case 'SHARE_KEYS': {
        this.active = new Set([...this.active].filter((m) => this.shares.has(m)));
        this.u2 = new Set(this.active);
        if (this.active.size < t) return this.fail('SHARE_KEYS', this.active.size);
        this.state = 'MASKED_INPUT';
        return true;
      }
      case 'MASKED_INPUT': {
        this.u3 = new Set([...this.u2].filter((m) => this.inputs.has(m)));
        this.active = new Set([...this.active].filter((m) => this.u3.has(m)));
        if (this.u3.size < t) return this.fail('MASKED_INPUT', this.u3.size);
        this.state = 'CONSISTENCY';
        return true;
      }
      case 'CONSISTENCY': {
        // Only survivors that signed the set will unmask; their inputs stay in the sum either way.
        this.active = new Set([...this.active].filter((m) => this.consistency.has(m)));
        if (this.active.size < t) return this.fail('CONSISTENCY', this.active.size);
        this.state = 'UNMASK';
        return true;
      }
      default:
        throw new StageError(`group ${this.groupId}`, 'ADVERTISE_KEYS, SHARE_KEYS, MASKED_INPUT or CONSISTENCY', this.state);
    }
  }

  /**
   * Ends UNMASK: reconstructs every needed secret from at least t shares, removes the masks
   * and returns the group's weighted sum. Throws GroupBelowThresholdError (and the group is
   * FAILED) when some secret has fewer than t shares.
   */
  async finish(pool?: MaskPool): Promise<GroupResult> {
    this.expectAfter('UNMASK');
    await this.folded();
    if (this.state === 'FAILED') throw this.failure!;
    const t = this.params.threshold;
    const byOwner = new Map<string, Uint8Array[]>();
    for (const list of this.reveals.values()) {
      for (const r of list) byOwner.set(r.owner, [...(byOwner.get(r.owner) ?? []), r.share]);
    }
    const dropped = [...this.u2].filter((m) => !this.u3.has(m));
    for (const owner of [...this.u3, ...dropped]) {
      const have = byOwner.get(owner)?.length ?? 0;
      if (have < t) {
        this.fail(`UNMASK (shares of ${owner})`, have);
        throw this.failure!;
      }
    }
    const sum = await this.sum.read();
    const masks: Mask[] = [];
    for (const j of this.u3) masks.push({ seed: await combineShares(byOwner.get(j)!), sign: -1 });
    for (const j of dropped) {
      const secret = await combineShares(byOwner.get(j)!);
      if (!agreementPublicKey(secret).equals(this.ads.get(j)!.maskKey)) {
        this.state = 'FAILED';
        this.failure = new CorruptShareError(this.groupId, j);
        throw this.failure;
      }
      // Survivors that masked with j added sign(i, j) * PRG(s_ij): take it out.
      for (const i of this.graph.get(j)!) {
        if (!this.u3.has(i)) continue;
        masks.push({ seed: pairwiseSeed(this.params, agree(secret, this.ads.get(i)!.maskKey)), sign: pairwiseSign(i, j) === 1 ? -1 : 1 });
      }
    }
    this.masksRemoved = masks.length;
    if (pool) await pool.apply(sum, masks);
    else applyMasks(sum, masks);
    // Dequantized in place: the group's words become its weighted sum, with no second vector.
    // Weights were numSamples / maxWeight: scaled back to sample counts in the same pass.
    const { weightedSum, totalWeight, maxAbs, sumSquares } = dequantizeSum(sum, this.u3.size, this.params.clipRange, this.params.quantBits, new Float32Array(sum.buffer, sum.byteOffset, sum.length - 1), this.params.maxWeight);
    this.state = 'DONE';
    return { groupId: this.groupId, weightedSum, totalWeight, maxAbs, sumSquares, members: [...this.u3].sort(), culprits: [...this.culprits].sort() };
  }

  /**
   * Lets go of the group's words (memory, or its file): its sum was aggregated, or it gave none.
   * `recycle`: nothing holds its weighted sum (a view of the words) any more.
   */
  release(recycle = false): void {
    // Additions still under way write the words: they are let go once those end (the first ask
    // counts, as it would have now).
    if (this.foldsPending > 0) this.releaseAsked ??= recycle;
    else this.sum.release(recycle);
  }

  /** Resolves once every input received so far is in the sum (see receiveMaskedInput). */
  folded(): Promise<void> {
    return this.folding;
  }

  /** The running sum before unmasking (what the coordinator holds; for tests and audits); after {@link folded}. */
  maskedSum(): Uint32Array {
    return this.sum.copy();
  }
}
