/**
 * Timelock encryption to a drand round, byte-compatible with the `tle` crate that subtensor
 * uses to reveal CRv3/CRv4 weight commits (Boneh-Franklin "FullIdent" IBE over BLS12-381 with
 * signatures in G1, public keys in G2, then AES-256-GCM). The format and test procedure are in
 * ../shared/chain/TIMELOCK.md; in short:
 * - the identity of round R is `Q = hash_to_G1(sha256(R as u64 big-endian))` (RFC 9380, the
 *   drand quicknet DST), and the round's beacon signature is `sk·Q`;
 * - a random `esk` (the AES key) is the IBE message; `sigma` is random, `r = sha256(sigma ‖ esk)`
 *   mod the group order, `U = r·G2`, `V = sigma ⊕ sha256(ser(e(Q, r·P)))`, `W = esk ⊕ sha256(sigma)`;
 * - bytes: `U (96, compressed) ‖ vec(V) ‖ vec(W) ‖ vec(vec(aes ‖ tag) ‖ vec(nonce)) ‖ vec("AES_GCM_")`,
 *   where vec is a u64 little-endian length then the bytes (arkworks' encoding).
 * Uses @noble/curves (audited pairings and hash-to-curve) and Node's AES-GCM.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { bls12_381 as bls } from '@noble/curves/bls12-381';

/** drand quicknet: the beacon subtensor reads by default (pallet drand's BeaconConfig). */
export const QUICKNET = {
  publicKey: '83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a',
  genesisTime: 1692803367,
  period: 3,
} as const;

const DST = 'BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_';
const SUITE = Buffer.from('AES_GCM_');
const G1 = bls.G1.ProjectivePoint;
const G2 = bls.G2.ProjectivePoint;
type G1Point = InstanceType<typeof G1>;
type G2Point = InstanceType<typeof G2>;

const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const xor = (a: Uint8Array, b: Uint8Array): Buffer => Buffer.from(a.map((x, i) => x ^ b[i]!));

/** The message drand signs for round R: sha256 of R as a u64, big-endian. */
export function roundMessage(round: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(round));
  return sha256(b);
}

/** The identity point of round R. */
function identity(round: bigint | number): G1Point {
  return G1.fromAffine(bls.G1.hashToCurve(roundMessage(round), { DST }).toAffine());
}

/** arkworks' serialisation of a GT element: its 12 base-field coefficients, 48 bytes little-endian each. */
function serializeGt(x: ReturnType<typeof bls.pairing>): Buffer {
  const out: Buffer[] = [];
  for (const c6 of [x.c0, x.c1]) {
    for (const c2 of [c6.c0, c6.c1, c6.c2]) {
      for (const c of [c2.c0, c2.c1]) out.push(Buffer.from(c.toString(16).padStart(96, '0'), 'hex').reverse());
    }
  }
  return Buffer.concat(out);
}

const vec = (b: Uint8Array): Buffer => {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b]);
};

/** Reads arkworks' Vec<u8> at `at`; throws on a length that runs past the end. */
function readVec(b: Buffer, at: number, what: string): [Buffer, number] {
  if (at + 8 > b.length) throw new Error(`timelock ciphertext: truncated before ${what}`);
  const len = b.readBigUInt64LE(at);
  if (len > BigInt(b.length - at - 8)) throw new Error(`timelock ciphertext: ${what} is longer than the bytes left`);
  return [b.subarray(at + 8, at + 8 + Number(len)), at + 8 + Number(len)];
}

const scalar = (bytes: Uint8Array): bigint => {
  const r = BigInt(`0x${Buffer.from(bytes).toString('hex')}`) % bls.params.r;
  return r === 0n ? 1n : r;
};

/** Randomness for one encryption; tests may fix it. */
export interface TimelockRandomness {
  esk: Uint8Array;
  sigmaSeed: Uint8Array;
  nonce: Uint8Array;
}

/**
 * Encrypts `payload` so that it opens with the beacon's signature of `round`, under the
 * beacon's public key (hex, a compressed G2 point).
 */
export function timelockEncrypt(payload: Uint8Array, round: bigint | number, publicKeyHex: string = QUICKNET.publicKey, rand?: TimelockRandomness): Buffer {
  const pk = G2.fromHex(publicKeyHex);
  const esk = rand?.esk ?? randomBytes(32);
  const nonce = rand?.nonce ?? randomBytes(12);
  const sigma = sha256(rand?.sigmaSeed ?? randomBytes(32));
  const r = scalar(sha256(sigma, esk));
  const u = G2.BASE.multiply(r);
  const v = xor(sigma, sha256(serializeGt(bls.pairing(identity(round), pk.multiply(r)))));
  const w = xor(esk, sha256(sigma));
  const cipher = createCipheriv('aes-256-gcm', esk, nonce);
  const sealed = Buffer.concat([cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([u.toRawBytes(true), vec(v), vec(w), vec(Buffer.concat([vec(sealed), vec(nonce)])), vec(SUITE)]);
}

/** The parts of a ciphertext. */
interface Parsed {
  u: G2Point;
  v: Buffer;
  w: Buffer;
  sealed: Buffer;
  nonce: Buffer;
}

function parse(ct: Uint8Array): Parsed {
  const b = Buffer.from(ct);
  if (b.length < 96) throw new Error('timelock ciphertext: shorter than its header');
  let u: G2Point;
  try {
    u = G2.fromHex(b.subarray(0, 96));
  } catch (err) {
    throw new Error(`timelock ciphertext: U is not a G2 point (${(err as Error).message})`);
  }
  const [v, a1] = readVec(b, 96, 'V');
  const [w, a2] = readVec(b, a1, 'W');
  const [body, a3] = readVec(b, a2, 'the body');
  const [suite, end] = readVec(b, a3, 'the cipher suite');
  if (end !== b.length) throw new Error('timelock ciphertext: bytes after the cipher suite');
  if (!suite.equals(SUITE)) throw new Error(`timelock ciphertext: cipher suite ${JSON.stringify(suite.toString('latin1'))}, expected "AES_GCM_"`);
  if (v.length !== 32 || w.length !== 32) throw new Error('timelock ciphertext: V and W must be 32 bytes');
  const [sealed, b1] = readVec(body, 0, 'the AES output');
  const [nonce, b2] = readVec(body, b1, 'the nonce');
  if (b2 !== body.length || nonce.length !== 12 || sealed.length < 16) throw new Error('timelock ciphertext: malformed AES-GCM body');
  return { u, v, w, sealed, nonce };
}

/**
 * Opens a ciphertext with the beacon's signature of its round (hex or bytes, a compressed G1
 * point). Throws when the signature is not the one the ciphertext was made for.
 */
export function timelockDecrypt(ct: Uint8Array, signature: Uint8Array | string): Buffer {
  const p = parse(ct);
  let sig: G1Point;
  try {
    sig = G1.fromHex(typeof signature === 'string' ? signature.replace(/^0x/, '') : signature);
  } catch (err) {
    throw new Error(`timelock: the signature is not a G1 point (${(err as Error).message})`);
  }
  const sigma = xor(p.v, sha256(serializeGt(bls.pairing(sig, p.u))));
  const esk = xor(p.w, sha256(sigma));
  if (!G2.BASE.multiply(scalar(sha256(sigma, esk))).equals(p.u)) throw new Error('timelock: the signature does not open this ciphertext (wrong round or beacon)');
  const decipher = createDecipheriv('aes-256-gcm', esk, p.nonce);
  decipher.setAuthTag(p.sealed.subarray(p.sealed.length - 16));
  return Buffer.concat([decipher.update(p.sealed.subarray(0, p.sealed.length - 16)), decipher.final()]);
}

/** Whether `signature` is the beacon's signature of `round` under `publicKeyHex`. */
export function verifyBeaconSignature(round: bigint | number, signature: Uint8Array | string, publicKeyHex: string = QUICKNET.publicKey): boolean {
  try {
    const sig = G1.fromHex(typeof signature === 'string' ? signature.replace(/^0x/, '') : signature);
    const pk = G2.fromHex(publicKeyHex);
    return bls.fields.Fp12.eql(bls.pairing(sig, G2.BASE), bls.pairing(identity(round), pk));
  } catch {
    return false;
  }
}

/** A beacon key pair of one's own (tests): its public key and a signer of rounds. */
export function testBeacon(secret: bigint): { publicKey: string; sign: (round: bigint | number) => string } {
  const sk = secret % bls.params.r;
  return {
    publicKey: Buffer.from(G2.BASE.multiply(sk).toRawBytes(true)).toString('hex'),
    sign: (round) => Buffer.from(identity(round).multiply(sk).toRawBytes(true)).toString('hex'),
  };
}
