/**
 * The node half of SecAgg+ (Bell et al. 2020, on Bonawitz et al. 2017): one instance per group
 * and round, driven through its stages in order:
 *
 *   advertise()        ADVERTISE_KEYS  two fresh key pairs (shares: nacl.box; masks: X25519),
 *                                      signed with the node's identity key and, when bound,
 *                                      its hotkey
 *   shareKeys(ads)     SHARE_KEYS      verifies each neighbour's signature (refusing the round on
 *                                      a forgery), splits the mask secret key and a fresh
 *                                      self-mask seed into Shamir shares (threshold t), one for
 *                                      each neighbour, each signed for its holder with the
 *                                      identity key and sealed to that neighbour
 *   receiveShares(s)   MASKED_INPUT    opens the shares addressed to it
 *   maskInput(x, n)    MASKED_INPUT    y = quantize(w x, w) + PRG(self seed)
 *                                          + sum over neighbours j that shared of +-PRG(s_ij)
 *   signSurvivors(set) CONSISTENCY     signs the survivor set it is given; it will unmask for
 *                                      that set only
 *   unmask(req)        UNMASK          with t valid survivors' signatures over the set it signed:
 *                                      for each neighbour j, the share of j's self seed if j
 *                                      survived, of j's mask key if j dropped; never both, and
 *                                      only once
 *
 * A call out of order throws StageError naming the stage expected and the one asked for.
 *
 * Threat model (as Flower's SecAgg+ workflow states its own; this adds Bonawitz et al.'s
 * consistency round and binds keys to hotkeys):
 * - An honest-but-curious coordinator learns each group's sum of at least t updates, and the
 *   sample counts and losses members report; never one update.
 * - A malicious coordinator cannot swap a member's keys where members have hotkeys (peers check
 *   the hotkey signature), and cannot learn both secrets of one member by naming different
 *   survivor sets (a member unmasks only for the set it signed, with t signatures over it). It
 *   can still drop members (denial of service), put hotkeys of its own in a group (on a subnet,
 *   registered ones only), and, without hotkeys, relay identity keys of its own.
 * - Up to t - 1 members colluding with each other (or with the coordinator) cannot rebuild a
 *   secret of another member: each secret needs t shares.
 */
import { randomBytes } from 'node:crypto';
import { type Identity, verifySignature, agree, generateAgreementKeyPair, type AgreementKeyPair, generateBoxKeyPair, open, seal, type BoxKeyPair, splitSecret, applyMasks, type Mask } from '../crypto/index.js';
import { sharedWords, type MaskPool } from './mask-pool.js';
import {
  ForgedAdvertisementError, GroupBelowThresholdError, InvalidFieldError, StageError, UnsafeUnmaskError, UpdateLengthError,
} from '../errors.js';
import {
  SHARE_DOMAIN, advertisementMessage, dealtShareMessage, pairwiseSeed, pairwiseSign,
  survivorSetMessage, type EncryptedShare, type KeyAdvertisement, type SecAggParams, type SurvivorSet, type SurvivorSignature, type UnmaskRequest, type UnmaskShare,
} from './constants.js';
import { neighbourGraph } from './graph.js';
import { quantizeWeighted } from './quantize.js';

type NodeStage = 'ADVERTISE_KEYS' | 'SHARE_KEYS' | 'RECEIVE_SHARES' | 'MASKED_INPUT' | 'CONSISTENCY' | 'UNMASK' | 'DONE' | 'ABORTED';

/** A share this node holds, with its dealer's signature over it. */
interface HeldShare { maskKeyShare: Buffer; seedShare: Buffer; maskKeySig: Buffer; seedSig: Buffer }

/** Plaintext of a share message: who to whom, the two shares, then the dealer's signature over each. */
function encodeSharePlaintext(p: SecAggParams, from: string, to: string, s: HeldShare): Buffer {
  const head = Buffer.from(JSON.stringify([SHARE_DOMAIN, p.roundId, p.groupId, from, to, s.maskKeyShare.length, s.seedShare.length]));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  return Buffer.concat([len, head, s.maskKeyShare, s.seedShare, s.maskKeySig, s.seedSig]);
}

function decodeSharePlaintext(buf: Uint8Array): { tag: string[]; share: HeldShare } | null {
  try {
    const b = Buffer.from(buf);
    const n = b.readUInt32LE(0);
    const tag = JSON.parse(b.toString('utf8', 4, 4 + n)) as [string, string, string, string, string, number, number];
    const rest = b.subarray(4 + n);
    const [k, sd] = [tag[5], tag[6]];
    if (rest.length !== k + sd + 128) return null;
    return {
      tag: tag.slice(0, 5) as string[],
      share: { maskKeyShare: rest.subarray(0, k), seedShare: rest.subarray(k, k + sd), maskKeySig: rest.subarray(k + sd, k + sd + 64), seedSig: rest.subarray(k + sd + 64) },
    };
  } catch {
    return null;
  }
}

/**
 * How a node binds round keys to hotkeys the coordinator does not control. With it, the node
 * signs its advertisement with its hotkey, and checks each peer's against the hotkey it expects
 * for that peer (its node id, which must also be admitted: on the subnet's metagraph, or in the
 * allowlist). Without it (open federations, no hotkeys) peers' keys are checked against the
 * identity keys the coordinator relays: that protects against other members, not against the
 * coordinator.
 */
export interface HotkeyBinding {
  /** Signs with this node's hotkey. */
  sign(message: Uint8Array): Uint8Array;
  /** Whether `signature` is `peer`'s hotkey over `message`; false for a peer id that is no hotkey. */
  verify(peer: string, message: Uint8Array, signature: Uint8Array): boolean;
  /** Whether `peer` is a hotkey this node accepts as a member (the metagraph or the allowlist). */
  admitted?(peer: string): boolean;
}

/** One node's side of one group. */
export class SecAggNode {
  private stage: NodeStage = 'ADVERTISE_KEYS';
  private readonly enc: BoxKeyPair = generateBoxKeyPair();
  private readonly mask: AgreementKeyPair = generateAgreementKeyPair();
  private readonly selfSeed = randomBytes(32);
  private readonly myNeighbours: Set<string>;
  /** Advertisements of neighbours that advertised (U1 within N(i)). */
  private readonly ads = new Map<string, KeyAdvertisement>();
  /** Every member's identity key, as relayed by the coordinator (open federations check with it). */
  private identities: ReadonlyMap<string, Uint8Array> = new Map();
  /** The survivor set this node signed in CONSISTENCY: the only one it unmasks for. */
  private signedSet: SurvivorSet | null = null;
  /** Shares this node holds of each neighbour that shared with it (U2 within N(i)), with their dealers' signatures. */
  private readonly held = new Map<string, HeldShare>();

  constructor(readonly params: SecAggParams, readonly nodeId: string, private readonly identity: Identity, private readonly hotkey?: HotkeyBinding) {
    if (!params.members.includes(nodeId)) throw new InvalidFieldError('secagg.members', `a list including ${nodeId}`, 'a list without it');
    this.myNeighbours = neighbourGraph(params.members, params.neighbours, params.seed).get(nodeId)!;
  }

  /** The stage the node expects next. */
  get expecting(): NodeStage {
    return this.stage;
  }

  /** This node's neighbours in the group. */
  get neighbours(): ReadonlySet<string> {
    return this.myNeighbours;
  }

  private expect(stage: NodeStage, got: string): void {
    if (this.stage !== stage) throw new StageError(`secagg node ${this.nodeId}`, this.stage, got);
  }

  /** ADVERTISE_KEYS: the signed public keys. */
  advertise(): KeyAdvertisement {
    this.expect('ADVERTISE_KEYS', 'ADVERTISE_KEYS');
    const body = { nodeId: this.nodeId, encKey: Buffer.from(this.enc.publicKey), maskKey: this.mask.publicKey };
    this.stage = 'SHARE_KEYS';
    const message = advertisementMessage(this.params, body);
    return {
      ...body, identityKey: this.identity.publicKey, signature: this.identity.sign(message),
      hotkeySignature: this.hotkey ? Buffer.from(this.hotkey.sign(message)) : Buffer.alloc(0),
    };
  }

  /**
   * SHARE_KEYS: checks the neighbours' advertisements (with a hotkey binding, against the
   * hotkeys their node ids name; else against the identity keys in `identities`, which the
   * coordinator relays) and returns this node's sealed shares. A forged or swapped advertisement
   * aborts this node's participation before it reveals anything (it becomes a dropout).
   */
  async shareKeys(ads: readonly KeyAdvertisement[], identities: ReadonlyMap<string, Uint8Array>): Promise<EncryptedShare[]> {
    this.expect('SHARE_KEYS', 'SHARE_KEYS');
    this.identities = identities;
    for (const ad of ads) {
      if (ad.nodeId === this.nodeId || !this.myNeighbours.has(ad.nodeId)) continue;
      const known = identities.get(ad.nodeId);
      const message = advertisementMessage(this.params, ad);
      const why = this.hotkey && this.hotkey.admitted && !this.hotkey.admitted(ad.nodeId) ? 'it is not an admitted hotkey (not on the metagraph or the allowlist)'
        : this.hotkey && !this.hotkey.verify(ad.nodeId, message, ad.hotkeySignature) ? 'its hotkey signature does not verify (keys not signed by the hotkey its node id names)'
        : !known ? 'no identity key is known for it'
        : !Buffer.from(known).equals(ad.identityKey) ? 'its identity key is not the one registered'
        : !verifySignature(ad.identityKey, message, ad.signature) ? 'the signature does not verify'
        : ad.encKey.length !== 32 || ad.maskKey.length !== 32 ? 'a key is not 32 bytes'
        : null;
      if (why) {
        this.stage = 'ABORTED';
        throw new ForgedAdvertisementError(ad.nodeId, why);
      }
      if (this.ads.has(ad.nodeId)) throw new InvalidFieldError('advertisements', 'one per node', `two for ${ad.nodeId}`);
      this.ads.set(ad.nodeId, ad);
    }
    const peers = [...this.ads.keys()].sort();
    if (peers.length < this.params.threshold) {
      this.stage = 'ABORTED';
      throw new GroupBelowThresholdError(this.params.groupId, 'SHARE_KEYS (neighbours that advertised)', peers.length, this.params.threshold);
    }
    const [keyShares, seedShares] = await Promise.all([
      splitSecret(this.mask.secretKey, peers.length, this.params.threshold),
      splitSecret(this.selfSeed, peers.length, this.params.threshold),
    ]);
    this.stage = 'RECEIVE_SHARES';
    // Each share signed for its holder: a share revealed later is checked against this, and a
    // holder that corrupts one is caught and named instead of wrecking the sum.
    const sign = (to: string, kind: UnmaskShare['kind'], share: Uint8Array) => Buffer.from(this.identity.sign(dealtShareMessage(this.params, this.nodeId, to, kind, share)));
    return peers.map((to, i) => ({
      from: this.nodeId,
      to,
      ciphertext: seal(encodeSharePlaintext(this.params, this.nodeId, to, {
        maskKeyShare: Buffer.from(keyShares[i]!), seedShare: Buffer.from(seedShares[i]!),
        maskKeySig: sign(to, 'mask-key', keyShares[i]!), seedSig: sign(to, 'self-seed', seedShares[i]!),
      }), this.ads.get(to)!.encKey, this.enc.secretKey),
    }));
  }

  /** MASKED_INPUT (first half): opens the shares neighbours sealed for this node. */
  receiveShares(shares: readonly EncryptedShare[]): void {
    this.expect('RECEIVE_SHARES', 'RECEIVE_SHARES');
    for (const s of shares) {
      const ad = this.ads.get(s.from);
      if (s.to !== this.nodeId || !ad) throw new InvalidFieldError('shares', `shares for ${this.nodeId} from its neighbours`, `one from ${s.from} to ${s.to}`);
      if (this.held.has(s.from)) throw new InvalidFieldError('shares', 'one share per neighbour', `two from ${s.from}`);
      const plain = open(s.ciphertext, ad.encKey, this.enc.secretKey);
      const parsed = plain && decodeSharePlaintext(plain);
      const [domain, roundId, groupId, from, to] = parsed?.tag ?? [];
      if (!parsed || domain !== SHARE_DOMAIN || roundId !== this.params.roundId || groupId !== this.params.groupId || from !== s.from || to !== this.nodeId) {
        throw new InvalidFieldError(`share from ${s.from}`, 'a share sealed for this round, group and node', 'one that does not open or does not match');
      }
      const dealer = ad.identityKey;
      const h = parsed.share;
      if (!verifySignature(dealer, dealtShareMessage(this.params, s.from, this.nodeId, 'mask-key', h.maskKeyShare), h.maskKeySig)
        || !verifySignature(dealer, dealtShareMessage(this.params, s.from, this.nodeId, 'self-seed', h.seedShare), h.seedSig)) {
        throw new InvalidFieldError(`share from ${s.from}`, 'shares signed by their dealer\'s identity key', 'a signature that does not verify');
      }
      this.held.set(s.from, h);
    }
    this.stage = 'MASKED_INPUT';
  }

  /** Neighbours whose shares this node holds (its U2 within N(i)): those it masks with. */
  get sharingNeighbours(): string[] {
    return [...this.held.keys()].sort();
  }

  /** MASKED_INPUT: the masked, quantized, weighted update (P + 1 words). */
  maskInput(update: Float32Array, numSamples: number, options: { onQuantized?: (q: Uint32Array) => void } = {}): Uint32Array {
    const y = this.quantize(update, numSamples, options.onQuantized);
    applyMasks(y, this.masks());
    this.stage = 'CONSISTENCY';
    return y;
  }

  /** MASKED_INPUT's checks, then the weighted update in fixed point (P + 1 words). */
  private quantize(update: Float32Array, numSamples: number, onQuantized?: (q: Uint32Array) => void): Uint32Array {
    this.expect('MASKED_INPUT', 'MASKED_INPUT');
    if (update.length + 1 !== this.params.vectorLength) throw new UpdateLengthError(this.params.vectorLength - 1, update.length);
    if (!(numSamples > 0 && numSamples <= this.params.maxWeight)) {
      throw new InvalidFieldError('num_samples', `1 to ${this.params.maxWeight}`, String(numSamples));
    }
    const q = quantizeWeighted(update, numSamples / this.params.maxWeight, this.params.clipRange, this.params.quantBits);
    onQuantized?.(new Uint32Array(q));
    return q;
  }

  /** The masks this node adds: its self mask and one pairwise mask per sharing neighbour. */
  private masks(): Mask[] {
    return [
      { seed: this.selfSeed, sign: 1 },
      ...this.sharingNeighbours.map((j) => ({
        seed: pairwiseSeed(this.params, agree(this.mask.secretKey, this.ads.get(j)!.maskKey)),
        sign: pairwiseSign(this.nodeId, j),
      })),
    ];
  }

  /**
   * MASKED_INPUT, off the event loop: like {@link maskInput}, with the masks expanded by `pool`'s
   * threads into shared memory.
   */
  async maskInputAsync(update: Float32Array, numSamples: number, pool: MaskPool, options: { onQuantized?: (q: Uint32Array) => void } = {}): Promise<Uint32Array> {
    const q = this.quantize(update, numSamples, options.onQuantized);
    const y = sharedWords(q.length);
    y.set(q);
    this.stage = 'CONSISTENCY';
    await pool.apply(y, this.masks());
    return y;
  }

  /** Checks a survivor set against the group and this node; throws UnsafeUnmaskError. */
  private checkSet(set: SurvivorSet): void {
    const survivors = new Set(set.survivors);
    const dropped = new Set(set.dropped);
    for (const d of dropped) if (survivors.has(d)) throw new UnsafeUnmaskError(`${d} is listed both as surviving and as dropped`);
    if (!survivors.has(this.nodeId)) throw new UnsafeUnmaskError(`this node (${this.nodeId}) is not listed as surviving`);
    if (survivors.size < this.params.threshold) {
      throw new UnsafeUnmaskError(`only ${survivors.size} survivors, the threshold is ${this.params.threshold}`);
    }
    for (const id of [...survivors, ...dropped]) {
      if (!this.params.members.includes(id)) throw new UnsafeUnmaskError(`${id} is not a member of group ${this.params.groupId}`);
    }
  }

  /**
   * CONSISTENCY: signs the survivor set the coordinator named (with the identity key and, when
   * bound, the hotkey). The node will unmask for this set only.
   */
  signSurvivors(set: SurvivorSet): SurvivorSignature {
    this.expect('CONSISTENCY', 'CONSISTENCY');
    this.checkSet(set);
    this.signedSet = { survivors: [...set.survivors].sort(), dropped: [...set.dropped].sort() };
    this.stage = 'UNMASK';
    const message = survivorSetMessage(this.params, this.signedSet);
    return {
      nodeId: this.nodeId, signature: Buffer.from(this.identity.sign(message)),
      hotkeySignature: this.hotkey ? Buffer.from(this.hotkey.sign(message)) : Buffer.alloc(0),
    };
  }

  /** Whether `sig` is `sig.nodeId`'s signature over `message` (its hotkey when bound, else its identity key). */
  private signatureHolds(sig: SurvivorSignature, message: Buffer): boolean {
    if (this.hotkey) return this.hotkey.verify(sig.nodeId, message, sig.hotkeySignature);
    const key = this.identities.get(sig.nodeId);
    return key !== undefined && verifySignature(key, message, sig.signature);
  }

  /**
   * UNMASK: the shares the coordinator may have, for the survivor set this node signed and with
   * at least t valid survivors' signatures over that same set; refuses anything else (the node
   * aborts, revealing nothing), and answers once.
   */
  unmask(request: UnmaskRequest): UnmaskShare[] {
    this.expect('UNMASK', 'UNMASK');
    this.checkSet(request);
    const set = this.signedSet!;
    const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().every((x, i) => x === b[i]);
    if (!same(request.survivors, set.survivors) || !same(request.dropped, set.dropped)) {
      this.stage = 'ABORTED';
      throw new UnsafeUnmaskError('the survivor set differs from the one this node signed');
    }
    const message = survivorSetMessage(this.params, set);
    const signers = new Set(request.signatures.filter((sig) => set.survivors.includes(sig.nodeId) && this.signatureHolds(sig, message)).map((sig) => sig.nodeId));
    if (signers.size < this.params.threshold) {
      this.stage = 'ABORTED';
      throw new UnsafeUnmaskError(`only ${signers.size} valid survivors' signatures over the survivor set this node signed, the threshold is ${this.params.threshold}`);
    }
    const survivors = new Set(set.survivors);
    const dropped = new Set(set.dropped);
    this.stage = 'DONE';
    const out: UnmaskShare[] = [];
    for (const [owner, s] of this.held) {
      if (survivors.has(owner)) out.push({ owner, kind: 'self-seed', share: s.seedShare, dealerSignature: s.seedSig });
      else if (dropped.has(owner)) out.push({ owner, kind: 'mask-key', share: s.maskKeyShare, dealerSignature: s.maskKeySig });
    }
    return out;
  }
}
