/**
 * Small authenticated messages between two nodes, relayed by the coordinator: `nacl.box`
 * (X25519, XSalsa20-Poly1305) from tweetnacl. A ciphertext is nonce (24 bytes) then box.
 */
import nacl from 'tweetnacl';

/** A box key pair (raw 32-byte keys). */
export interface BoxKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** A fresh box key pair. */
export function generateBoxKeyPair(): BoxKeyPair {
  return nacl.box.keyPair();
}

/** Encrypts `message` from `secretKey`'s owner to `publicKey`'s owner. */
export function seal(message: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): Buffer {
  const nonce = nacl.randomBytes(nacl.box.nonceLength);
  return Buffer.concat([nonce, nacl.box(message, nonce, publicKey, secretKey)]);
}

/** Decrypts a {@link seal}ed message; null when it does not authenticate. */
export function open(ciphertext: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array | null {
  if (ciphertext.length < nacl.box.nonceLength + nacl.box.overheadLength) return null;
  return nacl.box.open(ciphertext.subarray(nacl.box.nonceLength), ciphertext.subarray(0, nacl.box.nonceLength), publicKey, secretKey);
}
