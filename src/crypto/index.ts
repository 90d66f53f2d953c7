/**
 * Cryptography for identities and secure aggregation: Ed25519 signatures and X25519 agreement
 * (`node:crypto`), AES-128-CTR mask expansion (`node:crypto`), Shamir shares
 * (`shamir-secret-sharing`), and `nacl.box` (tweetnacl) for small messages between nodes.
 */
export { generateIdentity, identityFromSeed, verifySignature, type Identity } from './identity.js';
export { agree, agreementPublicKey, generateAgreementKeyPair, type AgreementKeyPair } from './x25519.js';
export { applyMask, applyMasks, maskWords, PRG_PIECE_BYTES, type Mask } from './prg.js';
export { addBytesInto, addFileInto, addIntoFile, addWordsInto } from './simd-add.js';
export { combineShares, splitSecret } from './shares.js';
export { generateBoxKeyPair, open, seal, type BoxKeyPair } from './box.js';
