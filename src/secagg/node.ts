/**
 * The node half of SecAgg+ (Bell et al. 2020, on Bonawitz et al. 2017): one instance per group
 * and round, driven through its stages in order:
 *
 *   advertise()        ADVERTISE_KEYS  two fresh key pairs (shares: nacl.box; masks: X25519),
 *                                      signed with the node's identity key
 *   shareKeys(ads)     SHARE_KEYS      verifies each neighbour's signature (refusing the round on
 *                                      a forgery), splits the mask secret key and a fresh
 *                                      self-mask seed into Shamir shares (threshold t), one for
 *                                      each neighbour, each sealed to that neighbour
 *   receiveShares(s)   MASKED_INPUT    opens the shares addressed to it
 *   maskInput(x, n)    MASKED_INPUT    y = quantize(w x, w) + PRG(self seed)
 *                                          + sum over neighbours j that shared of +-PRG(s_ij)
 *   unmask(req)        UNMASK          for each neighbour j: the share of j's self seed if j
 *                                      survived, of j's mask key if j dropped; never both, and
 *                                      only once
 *
 * A call out of order throws StageError naming the stage expected and the one asked for.
 */
import { randomBytes } from 'node:crypto';
import { type Identity, verifySignature, agree, generateAgreementKeyPair, type AgreementKeyPair, generateBoxKeyPair, open, seal, type BoxKeyPair, splitSecret, applyMasks, type Mask } from '../crypto/index.js';
import { sharedWords, type MaskPool } from './mask-pool.js';
import {
  ForgedAdvertisementError, GroupBelowThresholdError, InvalidFieldError, StageError, UnsafeUnmaskError, UpdateLengthError,
} from '../errors.js';
import {
  SHARE_DOMAIN, advertisementMessage, pairwiseSeed, pairwiseSign,
  type EncryptedShare, type KeyAdvertisement, type SecAggParams, type UnmaskRequest, type UnmaskShare,
} from './constants.js';
import { neighbourGraph } from './graph.js';
import { quantizeWeighted } from './quantize.js';

type NodeStage = 'ADVERTISE_KEYS' | 'SHARE_KEYS' | 'RECEIVE_SHARES' | 'MASKED_INPUT' | 'UNMASK' | 'DONE' | 'ABORTED';

/** Plaintext of a share message: who to whom, then the two shares. */
function encodeSharePlaintext(p: SecAggParams, from: string, to: string, maskKeyShare: Uint8Array, seedShare: Uint8Array): Buffer {
  const head = Buffer.from(JSON.stringify([SHARE_DOMAIN, p.roundId, p.groupId, from, to, maskKeyShare.length]));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  return Buffer.concat([len, head, maskKeyShare, seedShare]);
}

function decodeSharePlaintext(buf: Uint8Array): { tag: string[]; maskKeyShare: Buffer; seedShare: Buffer } | null {
  try {
    const b = Buffer.from(buf);
    const n = b.readUInt32LE(0);
    const tag = JSON.parse(b.toString('utf8', 4, 4 + n)) as [string, string, string, string, string, number];
    const rest = b.subarray(4 + n);
    return { tag: tag.slice(0, 5) as string[], maskKeyShare: rest.subarray(0, tag[5]), seedShare: rest.subarray(tag[5]) };
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
  /** Shares this node holds of each neighbour that shared with it (U2 within N(i)). */
  private readonly held = new Map<string, { maskKeyShare: Buffer; seedShare: Buffer }>();

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
    return peers.map((to, i) => ({
      from: this.nodeId,
      to,
      ciphertext: seal(encodeSharePlaintext(this.params, this.nodeId, to, keyShares[i]!, seedShares[i]!), this.ads.get(to)!.encKey, this.enc.secretKey),
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
      this.held.set(s.from, { maskKeyShare: parsed.maskKeyShare, seedShare: parsed.seedShare });
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
    this.stage = 'UNMASK';
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
    this.stage = 'UNMASK';
    await pool.apply(y, this.masks());
    return y;
  }

  /** UNMASK: the shares the coordinator may have; refuses unsafe requests, and answers once. */
  unmask(request: UnmaskRequest): UnmaskShare[] {
    this.expect('UNMASK', 'UNMASK');
    const survivors = new Set(request.survivors);
    const dropped = new Set(request.dropped);
    for (const d of dropped) if (survivors.has(d)) throw new UnsafeUnmaskError(`${d} is listed both as surviving and as dropped`);
    if (!survivors.has(this.nodeId)) throw new UnsafeUnmaskError(`this node (${this.nodeId}) is not listed as surviving`);
    if (survivors.size < this.params.threshold) {
      throw new UnsafeUnmaskError(`only ${survivors.size} survivors, the threshold is ${this.params.threshold}`);
    }
    for (const id of [...survivors, ...dropped]) {
      if (!this.params.members.includes(id)) throw new UnsafeUnmaskError(`${id} is not a member of group ${this.params.groupId}`);
    }
    this.stage = 'DONE';
    const out: UnmaskShare[] = [];
    for (const [owner, s] of this.held) {
      if (survivors.has(owner)) out.push({ owner, kind: 'self-seed', share: s.seedShare });
      else if (dropped.has(owner)) out.push({ owner, kind: 'mask-key', share: s.maskKeyShare });
    }
    return out;
  }
}
