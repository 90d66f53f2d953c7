/**
 * TLS for every gRPC server and client, when an operator gives a certificate and key (servers)
 * and the CA that signed them (clients). Without them, channels are plaintext: fine on
 * loopback and private networks, not across the internet.
 *
 * A role's clients all trust the same CA (one process is one role), so the CA is set once per
 * process ({@link useTlsForClients}) and `makeClient` picks it up.
 */
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from '../errors.js';

function readPem(option: string, file: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new ConfigError(option, `a readable PEM file at ${file}`, (err as NodeJS.ErrnoException).code ?? 'an unreadable file');
  }
  if (!bytes.includes('-----BEGIN ')) throw new ConfigError(option, 'a PEM file (-----BEGIN ...)', `a file of ${bytes.length} bytes without one`);
  return bytes;
}

/** Server credentials: TLS with `cert` and `key` (PEM files), or plaintext when both are ''. */
export function serverCredentials(cert: string, key: string): grpc.ServerCredentials {
  if (!cert && !key) return grpc.ServerCredentials.createInsecure();
  if (!cert || !key) throw new ConfigError(cert ? 'tls-key' : 'tls-cert', 'both --tls-cert and --tls-key, or neither', 'only one');
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: readPem('tls-cert', cert), private_key: readPem('tls-key', key) }], false);
}

/** Checks TLS flags when a config is loaded, so a bad one stops a role before it starts anything. */
export function checkTlsOptions(cert: string, key: string, ca: string): void {
  serverCredentials(cert, key);
  if (ca) readPem('tls-ca', ca);
}

let clientCa: Buffer | null = null;

/** Makes this process's clients use TLS, trusting the CA in `caFile` ('' : plaintext). */
export function useTlsForClients(caFile: string): void {
  clientCa = caFile ? readPem('tls-ca', caFile) : null;
}

/** The credentials a new client of this process uses. */
export function clientCredentials(): grpc.ChannelCredentials {
  return clientCa ? grpc.credentials.createSsl(clientCa) : grpc.credentials.createInsecure();
}
