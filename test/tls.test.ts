/**
 * TLS on every gRPC server: certificates made here with openssl (a CA, and a server certificate
 * for 127.0.0.1 it signs). The coordinator and the dataset node serve TLS only; the dataset node
 * and the trainers trust the CA; a round completes. A plaintext client, and a TLS client that
 * does not trust the CA, are refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Harness, grpcError } from './helpers.js';
import { callUnary, makeClient, CoordinatorClient, useTlsForClients } from '../src/wire/index.js';

let h: Harness;
afterEach(async () => {
  useTlsForClients('');
  await h.close();
});

function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=actiquest test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '1', '-extfile', f('san.ext'));
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

describe('TLS', () => {
  it('runs a round with every server on TLS, and refuses plaintext and untrusting clients', async () => {
    h = new Harness();
    const { ca, cert, key } = makeCertificates(h.dir);
    const tls = ['--tls-cert', cert, '--tls-key', key];
    const c = await h.coordinator([...tls, '--secure-aggregation', 'false', '--rounds', '1', '--cohort', '3', '--min-trainers', '3', '--hidden', '16',
      '--local-epochs', '1', '--validation-samples', '70', '--exit-when-done']);
    await h.dataset(c.address, 'ds-a', [...tls, '--tls-ca', ca]);
    for (const id of ['t0', 't1', 't2']) await h.trainer(c.address, id, ['--tls-ca', ca]);
    expect(await c.done).toBe('DONE');
    expect(c.job.history[0]!.participants).toBe(3);

    const plain = makeClient(CoordinatorClient, c.address, grpc.credentials.createInsecure());
    h.defer(() => plain.close());
    expect((await grpcError(callUnary(plain, 'GetStatus', {}, { timeoutMs: 3000 }))).code).toBe(grpc.status.UNAVAILABLE);
    const untrusting = makeClient(CoordinatorClient, c.address, grpc.credentials.createSsl());
    h.defer(() => untrusting.close());
    expect((await grpcError(callUnary(untrusting, 'GetStatus', {}, { timeoutMs: 3000 }))).code).toBe(grpc.status.UNAVAILABLE);
  }, 120_000);

  it('names a missing or half-given certificate', async () => {
    h = new Harness();
    await expect(h.coordinator(['--tls-cert', path.join(h.dir, 'nope.pem')])).rejects.toThrow('--tls-key: expected both --tls-cert and --tls-key, or neither, got only one');
    await expect(h.coordinator(['--tls-cert', path.join(h.dir, 'nope.pem'), '--tls-key', path.join(h.dir, 'nope.key')])).rejects.toThrow(`--tls-cert: expected a readable PEM file at ${path.join(h.dir, 'nope.pem')}, got ENOENT`);
  });
});
