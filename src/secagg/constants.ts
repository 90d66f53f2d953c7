/**
 * What both halves of SecAgg+ share: stage names, message shapes, domain-separation labels,
 * defaults, and the bytes both sides sign or derive (the advertisement message, the pairwise
 * mask seed and sign). The node half (`node.ts`) and the coordinator half (`coordinator.ts`)
 * import nothing from each other; what they agree on lives here.
 */
import { createHash } from 'node:crypto';

/** Stages of one group's protocol, in order. */
export const STAGES = ['ADVERTISE_KEYS', 'SHARE_KEYS', 'MASKED_INPUT', 'CONSISTENCY', 'UNMASK'] as const;
export type Stage = (typeof STAGES)[number];
/** A group's state: a stage, or finished. */
export type GroupState = Stage | 'DONE' | 'FAILED';

/** Groups are never smaller than this (DESIGN: differencing attacks). */
export const DEFAULT_MIN_GROUP_SIZE = 5;

/** Domain labels, so a signature or a derived seed can never be replayed in another role. */
export const ADVERTISE_DOMAIN = 'actiquest/secagg/v1/advertise';
export const PAIRWISE_DOMAIN = 'actiquest/secagg/v1/pairwise';
export const SHARE_DOMAIN = 'actiquest/secagg/v1/share';
export const CONSISTENCY_DOMAIN = 'actiquest/secagg/v1/consistency';

/** The public parameters of one group in one round, sent to every member. */
export interface SecAggParams {
  /** Unique per round attempt (job, round, attempt). */
  roundId: string;
  groupId: string;
  /** Member node ids, sorted. */
  members: string[];
  /** Neighbours per node (k); k >= members - 1 is the full graph (plain SecAgg). */
  neighbours: number;
  /** Shares needed to recover a secret (t). */
  threshold: number;
  /** Each coordinate (after weighting) is clipped to [-clipRange, clipRange]. */
  clipRange: number;
  /** Quantization levels are 2^quantBits; chosen so the group sum cannot wrap mod 2^32. */
  quantBits: number;
  /** Words in a masked input: the model's parameters plus one for the weight. */
  vectorLength: number;
  /** Weights are numSamples / maxWeight, so they lie in (0, 1]. */
  maxWeight: number;
  /** Public randomness of the round (32 bytes): seeds the neighbour graph. */
  seed: Buffer;
}

/** A node's advertised keys, signed with its identity key. */
export interface KeyAdvertisement {
  nodeId: string;
  /** Ed25519 identity public key (32 bytes). */
  identityKey: Buffer;
  /** nacl.box public key for receiving shares (32 bytes). */
  encKey: Buffer;
  /** X25519 public key for pairwise masks (32 bytes). */
  maskKey: Buffer;
  /** Ed25519 signature over {@link advertisementMessage}. */
  signature: Buffer;
  /**
   * The node's hotkey (sr25519, its node id) over the same bytes; empty for a node without one.
   * Peers check it against the hotkey they expect, a key the coordinator does not hold.
   */
  hotkeySignature: Buffer;
}

/** Shares of one node's secrets for one neighbour, encrypted to that neighbour. */
export interface EncryptedShare {
  from: string;
  to: string;
  ciphertext: Buffer;
}

/** The group-wide sets the coordinator names after MASKED_INPUT. */
export interface SurvivorSet {
  /** Nodes whose masked input is in the sum (U3). */
  survivors: string[];
  /** Nodes that shared keys but sent no masked input (U2 minus U3). */
  dropped: string[];
}

/** A survivor's signature over the survivor set it was given (CONSISTENCY). */
export interface SurvivorSignature {
  nodeId: string;
  /** Ed25519, by its identity key, over {@link survivorSetMessage}. */
  signature: Buffer;
  /** sr25519, by its hotkey, over the same bytes; empty for a node without one. */
  hotkeySignature: Buffer;
}

/**
 * What the coordinator asks of a surviving node in UNMASK: the survivor set, and at least t
 * survivors' signatures over it. A node unmasks only for the set it signed itself, and only with
 * t valid signatures over that set, so a coordinator that tells members different sets (to
 * learn both secrets of one member) gets nothing (Bonawitz et al. 2017, section 4).
 */
export interface UnmaskRequest extends SurvivorSet {
  signatures: SurvivorSignature[];
}

/** One revealed share: of a survivor's self-mask seed, or of a dropped node's mask key. */
export interface UnmaskShare {
  owner: string;
  kind: 'self-seed' | 'mask-key';
  share: Buffer;
  /** The owner's identity-key signature over {@link dealtShareMessage} (empty from an older member). */
  dealerSignature?: Buffer;
}

/** Bytes of a Shamir share of a 32-byte secret (the secret's length and its x). */
export const SHARE_BYTES = 33;

/** The bytes a dealer signs for each share it deals: the round, group, dealer, holder, kind and the share. */
export function dealtShareMessage(p: Pick<SecAggParams, 'roundId' | 'groupId'>, dealer: string, holder: string, kind: UnmaskShare['kind'], share: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${SHARE_DOMAIN}/dealt\0${p.roundId}\0${p.groupId}\0${dealer}\0${holder}\0${kind}\0`), share]);
}

/** The bytes an advertisement's signature covers. */
export function advertisementMessage(p: Pick<SecAggParams, 'roundId' | 'groupId'>, a: Pick<KeyAdvertisement, 'nodeId' | 'encKey' | 'maskKey'>): Buffer {
  return Buffer.concat([
    Buffer.from(`${ADVERTISE_DOMAIN}\0${p.roundId}\0${p.groupId}\0${a.nodeId}\0`),
    a.encKey,
    a.maskKey,
  ]);
}

/** The bytes a survivor signs in CONSISTENCY: the round, the group and both sets, sorted. */
export function survivorSetMessage(p: Pick<SecAggParams, 'roundId' | 'groupId'>, set: SurvivorSet): Buffer {
  return Buffer.from(JSON.stringify([CONSISTENCY_DOMAIN, p.roundId, p.groupId, [...set.survivors].sort(), [...set.dropped].sort()]));
}

/** Default neighbours for a group of n: about 2 log2 n, even, at most n - 1 (Bell et al. 2020). */
export function defaultNeighbours(n: number): number {
  const k = 2 * Math.ceil(Math.log2(Math.max(n, 2)));
  return Math.min(n - 1, k % 2 === 0 ? k : k + 1);
}

/** Default threshold for k neighbours: a majority of them, at least 2. */
export function defaultThreshold(k: number): number {
  return Math.max(2, Math.floor(k / 2) + 1);
}

/** The pairwise mask seed of two nodes, from their X25519 secret and the group's identity. */
export function pairwiseSeed(params: Pick<SecAggParams, 'roundId' | 'groupId'>, shared: Uint8Array): Buffer {
  return createHash('sha256').update(`${PAIRWISE_DOMAIN}\0${params.roundId}\0${params.groupId}\0`).update(shared).digest();
}

/** +1 if `a` adds the pairwise mask shared with `b`, -1 if it subtracts it. */
export function pairwiseSign(a: string, b: string): 1 | -1 {
  return a < b ? 1 : -1;
}
