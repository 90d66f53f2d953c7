/**
 * Signed requests. Every call carries, as metadata, the caller's hotkey (SS58, generic prefix
 * 42), the hotkey of the server it is meant for (the audience), a timestamp, a nonce and an
 * sr25519 signature (the hotkey's, as Bittensor uses) over
 *
 *   "actiquest/v1 request" \n <hotkey> \n <audience> \n <method path> \n <sha256 hex of the request body> \n <timestamp ms> \n <nonce>
 *
 * The body is the serialized request message of unary and server-streaming calls; a
 * client-streaming call (an update upload) signs the empty body, and its messages are bound to
 * the caller by the node id in its header, which must be the signer's address, and by TLS.
 *
 * Replays: a server remembers each nonce by the signer's public key (one key has one address:
 * other SS58 encodings of it are refused), refuses a request meant for another server's hotkey,
 * and refuses timestamps outside its window. A client learns the audience from discovery (the
 * validator's hotkey on chain, the dataset node's id in a shard reference) or, when it was given
 * only an address, from the server's unsigned `actiquest.v1.Identity/Who`: then a server that
 * lies about who it is can replay that client's requests to the server it named (pin the hotkey
 * where that matters).
 *
 * Session keys: sr25519 costs about 0.2 ms to sign and 0.4 ms to verify here, and a coordinator
 * verifies every heartbeat and long poll of every trainer. So a client may sign its requests
 * with an ed25519 session key of its own (node:crypto: about 0.02 ms to sign, 0.07 ms to
 * verify; nodes' `--session-keys`, on by default), which its hotkey certifies once per
 * session: the `x-aq-session-bin` header carries the
 * session's public key, its expiry (ms since the epoch, 8 bytes big-endian) and the hotkey's
 * sr25519 signature over
 *
 *   "actiquest/v1 session" \n <hotkey SS58> \n <ed25519 public key hex> \n <expiry ms>
 *
 * The server verifies a certificate once and remembers it until it expires; a request that
 * carries one is then signed by the session key, over the same payload as above. Requests
 * without the header are verified against the hotkey itself, as before. A session lasts 6 hours
 * and is replaced when half of it is gone; a server refuses certificates that have expired or
 * that claim more than a day.
 *
 * A server refuses with UNAUTHENTICATED a request without these headers, with a signature or a
 * session certificate that does not verify, an expired session, a timestamp outside its window,
 * or a nonce it has seen within the window (a replay), each with the reason; an admission policy
 * (allowlist file, subnet metagraph) then refuses hotkeys it does not admit with
 * PERMISSION_DENIED.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { waitReady, sr25519Sign, sr25519Verify } from '@polkadot/wasm-crypto';
import { hexToU8a, isHex } from '@polkadot/util';
import { cryptoWaitReady, decodeAddress, encodeAddress, keyExtractSuri, keyFromPath, mnemonicToMiniSecret, sr25519PairFromSeed } from '@polkadot/util-crypto';
import { BoundedMap } from '../util/index.js';
import { NodeIdMismatchError, quote, TooManyCallsError, UnauthenticatedError } from '../errors.js';

export const HEADER_HOTKEY = 'x-aq-hotkey';
export const HEADER_TIMESTAMP = 'x-aq-timestamp';
export const HEADER_NONCE = 'x-aq-nonce';
export const HEADER_SIGNATURE = 'x-aq-signature-bin';
export const HEADER_SESSION = 'x-aq-session-bin';
export const HEADER_AUDIENCE = 'x-aq-audience';

/** How long a session key is certified for, and the most a server accepts. */
export const SESSION_LIFETIME_MS = 6 * 3600_000;
export const MAX_SESSION_MS = 24 * 3600_000;
const SESSION_BYTES = 32 + 8 + 64;
/** Session certificates a server remembers at most (the oldest is forgotten first). */
const MAX_CERTIFIED = 100_000;
// DER prefix of an ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

/** How far a request's timestamp may be from the server's clock, by default. */
export const DEFAULT_MAX_SKEW_MS = 60_000;

const EMPTY_DIGEST = createHash('sha256').digest();


/** What signs requests: an sr25519 hotkey. */
export interface Signer {
  address: string;
  sign(message: Uint8Array): Uint8Array;
  /** true: sign requests with a session key the hotkey certifies (`--session-keys`); else the hotkey itself. */
  sessions?: boolean;
}

/** Substrate's development phrase, which `//Name` URIs derive from (as @polkadot/keyring does). */
const DEV_PHRASE = 'bottom drive obey lake curtain smoke basket hold race lonely fit walk';

/**
 * Readies sr25519. Signing and verifying go through @polkadot/wasm-crypto (schnorrkel compiled
 * to wasm), not util-crypto's pure-JS @scure/sr25519: 0.18 against 1.5 ms a signature and 0.38
 * against 3.1 ms a verification here, and a coordinator verifies every request it serves.
 */
export async function sr25519Ready(): Promise<void> {
  await Promise.all([cryptoWaitReady(), waitReady()]);
}

/** Verifies an sr25519 signature (false for any malformed input). */
export function verifySr25519(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    return sr25519Verify(signature, message, publicKey);
  } catch {
    return false;
  }
}

/**
 * A signer from a secret URI (a mnemonic, a 0x seed, or `//Name` for development keys, with
 * derivation paths as @polkadot/keyring reads them). The secret is never logged. A btcli hotkey
 * file is opened by `chain`'s `loadSigner`.
 */
export async function signerFromSecret(uri: string): Promise<Signer> {
  await sr25519Ready();
  let pair: { publicKey: Uint8Array; secretKey: Uint8Array };
  try {
    const { phrase, path, password } = keyExtractSuri(uri.startsWith('//') ? `${DEV_PHRASE}${uri}` : uri);
    const seed = isHex(phrase, 256) ? hexToU8a(phrase) : mnemonicToMiniSecret(phrase, password);
    pair = keyFromPath(sr25519PairFromSeed(seed), path, 'sr25519');
  } catch (err) {
    throw new Error(`hotkey: expected a mnemonic, a 0x 32-byte seed or a //Name URI (${(err as Error).message})`);
  }
  const { publicKey, secretKey } = pair;
  return { address: encodeAddress(publicKey, 42), sign: (m) => sr25519Sign(publicKey, secretKey, m) };
}

/** The bytes a request's signature covers. */
export function signedPayload(hotkey: string, audience: string, path: string, bodyDigest: Buffer, timestamp: string, nonce: string): Buffer {
  return Buffer.from(`actiquest/v1 request\n${hotkey}\n${audience}\n${path}\n${bodyDigest.toString('hex')}\n${timestamp}\n${nonce}`);
}

/** The bytes a session certificate's hotkey signature covers. */
export function sessionPayload(hotkey: string, sessionKey: Buffer, expiresMs: number): Buffer {
  return Buffer.from(`actiquest/v1 session\n${hotkey}\n${sessionKey.toString('hex')}\n${expiresMs}`);
}

/** A session: its ed25519 private key and the certificate header that vouches for it. */
export interface Session { key: KeyObject; header: Buffer; expiresMs: number }

/**
 * How to sign: with the signer's session (true), the hotkey itself (false), or a given session
 * (default: the signer's `sessions`); for the server whose hotkey is `audience` (default: none,
 * which servers refuse, naming themselves).
 */
export interface SignOptions { session?: boolean | Session; audience?: string }
const sessions = new WeakMap<Signer, Session>();

/** A new session key for `signer`, certified until `now + lifetimeMs`. */
export function newSession(signer: Signer, now = Date.now(), lifetimeMs = SESSION_LIFETIME_MS): Session {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI.length);
  const expiresMs = now + lifetimeMs;
  const expiry = Buffer.alloc(8);
  expiry.writeBigUInt64BE(BigInt(expiresMs));
  const cert = signer.sign(sessionPayload(signer.address, raw, expiresMs));
  return { key: privateKey, header: Buffer.concat([raw, expiry, Buffer.from(cert)]), expiresMs };
}

/** The signer's current session, replaced once half of its lifetime is gone. */
function sessionOf(signer: Signer, now: number): Session {
  let s = sessions.get(signer);
  if (!s || s.expiresMs - now < SESSION_LIFETIME_MS / 2) {
    s = newSession(signer, now);
    sessions.set(signer, s);
  }
  return s;
}

/**
 * Metadata that signs a call of `path` whose serialized request is `body` (null: a client
 * stream): by the hotkey itself, or with its session key when the signer has `sessions` on or
 * `session` is true; `session` may also name a session of one's own (tests: expired or forged
 * ones).
 */
export function signedMetadata(signer: Signer, path: string, body: Buffer | null, now = Date.now(), opts: SignOptions = {}): grpc.Metadata {
  const md = new grpc.Metadata();
  const timestamp = String(now);
  const nonce = randomBytes(16).toString('hex');
  const digest = body ? createHash('sha256').update(body).digest() : EMPTY_DIGEST;
  const audience = opts.audience ?? '';
  const payload = signedPayload(signer.address, audience, path, digest, timestamp, nonce);
  md.set(HEADER_HOTKEY, signer.address);
  if (audience) md.set(HEADER_AUDIENCE, audience);
  md.set(HEADER_TIMESTAMP, timestamp);
  md.set(HEADER_NONCE, nonce);
  const want = opts.session ?? signer.sessions === true;
  const session = want === false ? null : typeof want === 'object' ? want : sessionOf(signer, now);
  if (session) {
    md.set(HEADER_SESSION, session.header);
    md.set(HEADER_SIGNATURE, edSign(null, payload, session.key));
  } else {
    md.set(HEADER_SIGNATURE, Buffer.from(signer.sign(payload)));
  }
  return md;
}

/** Which hotkeys may call as which role. */
export interface Admission {
  /** Throws {@link NotAdmittedError} when `address` may not act as `role`. */
  check(address: string, role: string): void;
}

/** Options of a {@link RequestVerifier}. */
export interface VerifierOptions {
  /** This server's hotkey: requests must name it (undefined: any audience, for tests of signatures alone). */
  audience?: string;
  maxSkewMs?: number;
  admission?: Admission;
  now?: () => number;
}

/**
 * Checks signed requests: headers, timestamp window, nonce freshness, signature, admission.
 * Nonces are remembered for twice the window (a request older than that is refused as stale).
 */
export class RequestVerifier {
  private readonly seen = new Map<string, number>();
  /** Certificates verified, by hotkey and header, with their keys (until they expire). */
  private readonly certified = new BoundedMap<string, { key: KeyObject; expiresMs: number }>(MAX_CERTIFIED);
  private readonly maxSkewMs: number;
  private readonly now: () => number;
  private lastPrune = 0;

  constructor(private readonly options: VerifierOptions = {}) {
    this.maxSkewMs = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
    this.now = options.now ?? Date.now;
  }

  /** Verifies a call's metadata against its path and body digest; returns the caller's address. */
  verify(path: string, md: grpc.Metadata, bodyDigest: Buffer | null, role: string): string {
    const one = (h: string) => {
      const v = md.get(h);
      return v.length === 1 ? v[0]! : undefined;
    };
    const hotkey = one(HEADER_HOTKEY), timestamp = one(HEADER_TIMESTAMP), nonce = one(HEADER_NONCE), signature = one(HEADER_SIGNATURE);
    if (hotkey === undefined && timestamp === undefined && nonce === undefined && signature === undefined) {
      throw new UnauthenticatedError('request signature', `${HEADER_HOTKEY}, ${HEADER_TIMESTAMP}, ${HEADER_NONCE} and ${HEADER_SIGNATURE} metadata (this server takes signed requests only)`, 'none');
    }
    if (typeof hotkey !== 'string') throw new UnauthenticatedError(HEADER_HOTKEY, 'one SS58 address', hotkey === undefined ? 'none' : 'binary');
    let publicKey: Uint8Array;
    try {
      publicKey = decodeAddress(hotkey);
      if (publicKey.length !== 32) throw new Error('length');
    } catch {
      throw new UnauthenticatedError(HEADER_HOTKEY, 'an SS58 address', quote(hotkey));
    }
    // One form per key: nonces and admission must not see one key under two names.
    const caller = encodeAddress(publicKey, 42);
    if (hotkey !== caller) throw new UnauthenticatedError(HEADER_HOTKEY, `the key's address in the generic SS58 format (prefix 42), ${caller}`, quote(hotkey));
    const audience = one(HEADER_AUDIENCE);
    const want = this.options.audience;
    if (want !== undefined && audience !== want) {
      throw new UnauthenticatedError(HEADER_AUDIENCE, `this server's hotkey, ${want} (actiquest.v1.Identity/Who names it)`,
        audience === undefined ? 'none' : typeof audience === 'string' ? `${quote(audience)} (a request meant for another server)` : 'binary');
    }
    if (audience !== undefined && typeof audience !== 'string') throw new UnauthenticatedError(HEADER_AUDIENCE, 'a hotkey address', 'binary');
    if (typeof timestamp !== 'string' || !/^\d{1,15}$/.test(timestamp)) {
      throw new UnauthenticatedError(HEADER_TIMESTAMP, 'milliseconds since the epoch', JSON.stringify(String(timestamp ?? 'none').slice(0, 32)));
    }
    const age = this.now() - Number(timestamp);
    if (Math.abs(age) > this.maxSkewMs) {
      throw new UnauthenticatedError(HEADER_TIMESTAMP, `a time within ${this.maxSkewMs / 1000} s of the server's clock (a stale or post-dated request)`, `${(Math.abs(age) / 1000).toFixed(1)} s ${age > 0 ? 'old' : 'ahead'}`);
    }
    if (typeof nonce !== 'string' || !/^[0-9a-f]{16,64}$/.test(nonce)) {
      throw new UnauthenticatedError(HEADER_NONCE, '16 to 64 lowercase hex digits', JSON.stringify(String(nonce ?? 'none').slice(0, 80)));
    }
    if (!Buffer.isBuffer(signature) || signature.length !== 64) {
      throw new UnauthenticatedError(HEADER_SIGNATURE, 'a 64-byte sr25519 signature', Buffer.isBuffer(signature) ? `${signature.length} bytes` : 'none');
    }
    const payload = signedPayload(hotkey, audience ?? '', path, bodyDigest ?? EMPTY_DIGEST, timestamp, nonce);
    const session = md.get(HEADER_SESSION);
    if (session.length > 0) {
      const key = this.sessionKey(hotkey, publicKey, session);
      if (!edVerify(null, payload, key, signature)) {
        throw new UnauthenticatedError(HEADER_SIGNATURE, `a signature by ${hotkey}'s session key over its hotkey, the server's, the method, body digest, timestamp and nonce`, 'one that does not verify');
      }
    } else if (!verifySr25519(payload, signature, publicKey)) {
      throw new UnauthenticatedError(HEADER_SIGNATURE, `a signature by ${hotkey} over its hotkey, the server's, the method, body digest, timestamp and nonce`, 'one that does not verify');
    }
    // Only a request whose signature verifies may use up a nonce.
    this.prune();
    const key = `${Buffer.from(publicKey).toString('hex')}/${nonce}`;
    if (this.seen.has(key)) throw new UnauthenticatedError(HEADER_NONCE, 'a nonce not used before', `one ${hotkey} already used (a replayed request)`);
    this.seen.set(key, Number(timestamp) + 2 * this.maxSkewMs);
    this.options.admission?.check(caller, role);
    return caller;
  }

  /** The session key a certificate header vouches for, verified once and then remembered. */
  private sessionKey(hotkey: string, hotkeyPublic: Uint8Array, values: grpc.MetadataValue[]): KeyObject {
    const header = values[0];
    if (values.length !== 1 || !Buffer.isBuffer(header) || header.length !== SESSION_BYTES) {
      throw new UnauthenticatedError(HEADER_SESSION, `one ${SESSION_BYTES}-byte session certificate (ed25519 key, expiry, hotkey signature)`, values.length !== 1 ? `${values.length} values` : Buffer.isBuffer(header) ? `${header.length} bytes` : 'text');
    }
    const id = `${hotkey}/${header.toString('base64')}`;
    let known = this.certified.get(id);
    if (!known) {
      const raw = header.subarray(0, 32), expiresMs = Number(header.readBigUInt64BE(32)), cert = header.subarray(40);
      if (expiresMs - this.now() > MAX_SESSION_MS + this.maxSkewMs) {
        throw new UnauthenticatedError(HEADER_SESSION, `a session that ends within ${MAX_SESSION_MS / 3600_000} h`, `one that ends in ${((expiresMs - this.now()) / 3600_000).toFixed(1)} h`);
      }
      if (!verifySr25519(sessionPayload(hotkey, raw, expiresMs), cert, hotkeyPublic)) {
        throw new UnauthenticatedError(HEADER_SESSION, `a session key certified by ${hotkey}`, 'a certificate that does not verify');
      }
      known = { key: createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw]), format: 'der', type: 'spki' }), expiresMs };
      // Bounded: anyone may certify sessions of their own key before admission refuses them.
      this.certified.set(id, known);
    }
    if (known.expiresMs <= this.now()) {
      throw new UnauthenticatedError(HEADER_SESSION, 'an unexpired session', `one that expired ${((this.now() - known.expiresMs) / 1000).toFixed(0)} s ago`);
    }
    return known.key;
  }

  /** Forgets nonces whose requests would now be refused as stale anyway, and expired sessions. */
  private prune(): void {
    const now = this.now();
    if (now - this.lastPrune < 1000) return;
    this.lastPrune = now;
    for (const [k, until] of this.seen) if (until < now) this.seen.delete(k);
    for (const [k, s] of this.certified) if (s.expiresMs <= now) this.certified.delete(k);
  }
}

/** Checks that a signed request's node id is its signer's address (no-op on an open server). */
export function checkNodeIsCaller(field: string, nodeId: string, reqOrCall: unknown): void {
  const caller = callerOf(reqOrCall);
  if (caller && nodeId !== caller) throw new NodeIdMismatchError(field, caller, nodeId);
}

/** The caller's address a verified request or call carries (empty when the server is open). */
const CALLER = Symbol('actiquest.caller');

/** The hotkey that signed the request (or call, for client streams); '' on an open server. */
export function callerOf(reqOrCall: unknown): string {
  return (reqOrCall as { [CALLER]?: string } | null)?.[CALLER] ?? '';
}

const BODY_DIGEST = Symbol('actiquest.bodyDigest');

/**
 * A request deserialized from `body` here, where its bytes arrived elsewhere (the coordinator's
 * data plane takes them on a thread of its own): marked with their digest, as the deserializer
 * of {@link signedService} marks what it reads, for the signature check.
 */
export function deserializeWithDigest<T>(method: grpc.MethodDefinition<unknown, unknown>, body: Buffer): T {
  const req = method.requestDeserialize(body) as Record<symbol, unknown>;
  Object.defineProperty(req, BODY_DIGEST, { value: createHash('sha256').update(body).digest() });
  return req as T;
}

/** Normalises an address to the generic SS58 format (prefix 42). */
export function ss58(address: string): string {
  return encodeAddress(decodeAddress(address), 42);
}

/**
 * Calls in progress by hotkey, at most `max` each: one node cannot take every stream and
 * handler of a server. Shared by the services of one server.
 */
export class CallLimiter {
  private readonly calls = new Map<string, number>();
  constructor(readonly max: number) {}

  /** Counts a call by `caller` and returns what ends it (once); throws {@link TooManyCallsError} at the limit. */
  enter(caller: string): () => void {
    const n = this.calls.get(caller) ?? 0;
    if (n >= this.max) throw new TooManyCallsError(caller, this.max);
    this.calls.set(caller, n + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = this.calls.get(caller)! - 1;
      if (left > 0) this.calls.set(caller, left);
      else this.calls.delete(caller);
    };
  }
}

/**
 * A service definition and handlers that take signed requests only: each request body's digest
 * is kept as it is deserialized, each call verified before its handler runs, and the caller's
 * address put on the request (or, for client streams, the call) for {@link callerOf}.
 * `roleOf(method)` names the role admission checks for each method.
 */
export function signedService(
  definition: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation, verifier: RequestVerifier,
  roleOf: (method: string) => string, onError: (err: unknown, method: string) => Partial<grpc.ServiceError>, limiter?: CallLimiter,
): { definition: grpc.ServiceDefinition; impl: grpc.UntypedServiceImplementation } {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const out: grpc.UntypedServiceImplementation = {};
  for (const [name, m] of Object.entries(definition as Record<string, grpc.MethodDefinition<unknown, unknown>>)) {
    def[name] = m.requestStream ? m : {
      ...m,
      requestDeserialize: (buf: Buffer) => {
        const req = m.requestDeserialize(buf) as Record<symbol, unknown>;
        Object.defineProperty(req, BODY_DIGEST, { value: createHash('sha256').update(buf).digest() });
        return req;
      },
    };
    const handler = impl[name] as (...args: unknown[]) => void;
    /** Verifies the call and counts it against its caller's limit; returns what ends the count. */
    const check = (call: { metadata: grpc.Metadata; request?: unknown; once(event: 'cancelled', fn: () => void): unknown }): () => void => {
      const digest = m.requestStream ? null : ((call.request as Record<symbol, Buffer>)[BODY_DIGEST] ?? null);
      const caller = verifier.verify(m.path, call.metadata, digest ?? (m.requestStream ? null : EMPTY_DIGEST), roleOf(name));
      const target = m.requestStream ? call : call.request;
      Object.defineProperty(target, CALLER, { value: caller });
      const end = limiter?.enter(caller) ?? (() => {});
      call.once('cancelled', end);
      return end;
    };
    out[name] = (m.responseStream
      ? (call: grpc.ServerWritableStream<unknown, unknown>) => {
        let end: () => void;
        try {
          end = check(call);
        } catch (err) {
          call.emit('error', onError(err, name));
          return;
        }
        for (const event of ['finish', 'close', 'error']) call.once(event, end);
        handler(call);
      }
      : (call: grpc.ServerUnaryCall<unknown, unknown> & { resume?: () => void }, callback: grpc.sendUnaryData<unknown>) => {
        let end: () => void;
        try {
          end = check(call);
        } catch (err) {
          call.resume?.();
          callback(onError(err, name));
          return;
        }
        handler(call, ((err: grpc.ServiceError | null, value?: unknown) => {
          end();
          callback(err, value);
        }));
      }) as grpc.UntypedHandleCall;
  }
  return { definition: def, impl: out };
}
