/**
 * Signed requests and admission end to end: a coordinator that takes signed requests only, an
 * allowlist, trainers and a dataset node with hotkeys, shard leases. The job trains with every
 * node known by its hotkey's address; then bad signatures, stale timestamps, replays (as sent, with
 * the hotkey re-encoded, or meant for another server), hotkeys not
 * admitted (or admitted for another role), node ids that are not the signer, and bad leases are
 * each refused with their status and reason.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { decodeAddress, encodeAddress } from '@polkadot/util-crypto';
import { Harness, actiquest, freePort, grpcError, until } from './helpers.js';
import { dev, lease, rawStream, rawUnary, sign } from './signed-fixture.js';
import { newSession, callClientStream, callUnary, makeClient, whoIs, CoordinatorClient, DatasetClient, JobsClient } from '../src/wire/index.js';

let h: Harness;
afterEach(async () => h.close());

describe('signed requests', () => {
  it('trains with hotkey-signed nodes and refuses bad signatures, replays, strangers and bad leases', async () => {
    h = new Harness();
    const [t0, t1, t2, ds, researcher, mallory, leaseKey] = await Promise.all(['T0', 'T1', 'T2', 'Ds', 'Researcher', 'Mallory', 'Lease'].map(dev));
    const allow = path.join(h.dir, 'allowlist');
    fs.writeFileSync(allow, [
      '# trainers', `${t0!.address} trainer`, `${t1!.address} trainer`, `${t2!.address} trainer`,
      `${ds!.address} dataset`, `${researcher!.address} researcher   # may submit jobs`, '',
    ].join('\n'));
    const c = await h.coordinator(['--auth', 'signed', '--allowlist', allow, '--lease-key-uri', '//Lease', '--secure-aggregation', 'false',
      '--rounds', '2', '--cohort', '3', '--min-trainers', '3', '--hidden', '16', '--local-epochs', '1', '--validation-samples', '70', '--cohort-wait', '0']);
    expect(c.leaseKey).toBe(leaseKey!.address);
    const d = await h.dataset(c.address, 'ds-signed', ['--hotkey-uri', '//Ds', '--auth', 'signed']);
    // One trainer signs with a session key its hotkey certifies, the others with the hotkey itself.
    for (const t of ['T0', 'T1', 'T2']) await h.trainer(c.address, '', ['--hotkey-uri', `//${t}`, ...(t === 'T2' ? [] : ['--session-keys', 'false'])]);
    await c.done;
    expect(c.job.history).toHaveLength(2);
    expect(new Set(c.job.history.flatMap((r) => r.reporters))).toEqual(new Set([t0!.address, t1!.address, t2!.address]));
    expect(c.job.history[0]!.datasets).toEqual([ds!.address]);

    // Each server names the hotkey requests to it must be signed for.
    expect(await whoIs(c.address, { timeoutMs: 5000 })).toEqual({ hotkey: leaseKey!.address, role: 'coordinator' });
    expect(await whoIs(d.address, { timeoutMs: 5000 })).toEqual({ hotkey: ds!.address, role: 'dataset' });
    const coord = makeClient(CoordinatorClient, c.address, undefined, null, leaseKey!.address);
    const jobs = makeClient(JobsClient, c.address, undefined, null, leaseKey!.address);
    const data = makeClient(DatasetClient, d.address, undefined, null, ds!.address);
    h.defer(() => { coord.close(); jobs.close(); data.close(); });
    const hb = (nodeId: string) => ({ nodeId, taskId: '' });
    const dataPlane = makeClient(CoordinatorClient, c.dataAddress!, undefined, null, leaseKey!.address);
    const dataPlaneAsMallory = makeClient(CoordinatorClient, c.dataAddress!, undefined, mallory, leaseKey!.address);
    h.defer(() => { dataPlane.close(); dataPlaneAsMallory.close(); });
    const upload = (nodeId: string) => ({ part: 'header' as const, header: { nodeId, taskId: 't', jobId: 'job-1', round: 1, numSamples: 1, trainLoss: 0, numParams: 1, trainSeconds: 0, masked: false, blob: null } });
    const replayed = sign(coord, 'Heartbeat', t0!, hb(t0!.address));
    await rawUnary(coord, 'Heartbeat', hb(t0!.address), replayed);
    const asT0 = makeClient(DatasetClient, d.address, undefined, t0);
    const asResearcher = makeClient(JobsClient, c.address, undefined, researcher);
    h.defer(() => { asT0.close(); asResearcher.close(); });
    const manifest = await callUnary(asT0, 'GetManifest', {}, { timeoutMs: 5000 });
    const shard = manifest.shards[0]!.shardId;
    const stream = (signer: typeof t0, l: unknown) => grpcError(rawStream(data, 'StreamShard', { shardId: shard, lease: l }, sign(data, 'StreamShard', signer!, { shardId: shard, lease: l })));

    const cases: [string, () => Promise<{ code: status; details: string }>, status, RegExp][] = [
      ['unsigned request', () => grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), new Metadata())), status.UNAUTHENTICATED,
        /^request signature: expected x-aq-hotkey, x-aq-timestamp, x-aq-nonce and x-aq-signature-bin metadata \(this server takes signed requests only\), got none$/],
      ['signature by another key', () => {
        const md = sign(coord, 'Heartbeat', t1!, hb(t0!.address), { session: false });
        md.set('x-aq-hotkey', t0!.address);
        return grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), md));
      }, status.UNAUTHENTICATED, /^x-aq-signature-bin: expected a signature by 5\w+ over its hotkey, the server's, the method, body digest, timestamp and nonce, got one that does not verify$/],
      ['session certified by another key', () => {
        const md = sign(coord, 'Heartbeat', t1!, hb(t0!.address), { session: true });
        md.set('x-aq-hotkey', t0!.address);
        return grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), md));
      }, status.UNAUTHENTICATED, /^x-aq-session-bin: expected a session key certified by 5\w+, got a certificate that does not verify$/],
      ['expired session', () => grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), sign(coord, 'Heartbeat', t0!, hb(t0!.address), { session: newSession(t0!, Date.now() - 7 * 3600_000) }))),
        status.UNAUTHENTICATED, /^x-aq-session-bin: expected an unexpired session, got one that expired 36\d\d s ago$/],
      ['session claiming two days', () => grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), sign(coord, 'Heartbeat', t0!, hb(t0!.address), { session: newSession(t0!, Date.now(), 48 * 3600_000) }))),
        status.UNAUTHENTICATED, /^x-aq-session-bin: expected a session that ends within 24 h, got one that ends in 48\.0 h$/],
      ['truncated session certificate', () => {
        const md = sign(coord, 'Heartbeat', t0!, hb(t0!.address), { session: true });
        md.set('x-aq-session-bin', Buffer.alloc(50));
        return grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), md));
      }, status.UNAUTHENTICATED, /^x-aq-session-bin: expected one 104-byte session certificate \(ed25519 key, expiry, hotkey signature\), got 50 bytes$/],
      ['hotkey signature under a session header', () => {
        const md = sign(coord, 'Heartbeat', t0!, hb(t0!.address), { session: false });
        md.set('x-aq-session-bin', sign(coord, 'Heartbeat', t0!, hb(t0!.address), { session: true }).get('x-aq-session-bin')[0]!);
        return grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), md));
      }, status.UNAUTHENTICATED, /^x-aq-signature-bin: expected a signature by 5\w+'s session key over its hotkey, the server's, the method, body digest, timestamp and nonce, got one that does not verify$/],
      ['body changed after signing', () => grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), sign(coord, 'Heartbeat', t0!, hb(t0!.address), { body: hb(t1!.address) }))),
        status.UNAUTHENTICATED, /^x-aq-signature-bin: expected a signature by .* got one that does not verify$/],
      ['stale timestamp', () => grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), sign(coord, 'Heartbeat', t0!, hb(t0!.address), { now: Date.now() - 120_000 }))),
        status.UNAUTHENTICATED, /^x-aq-timestamp: expected a time within 60 s of the server's clock \(a stale or post-dated request\), got 1\d\d\.\d s old$/],
      ['replay with the hotkey at another SS58 prefix', () => {
        const md = replayed.clone();
        md.set('x-aq-hotkey', encodeAddress(decodeAddress(t0!.address), 0));
        return grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), md));
      }, status.UNAUTHENTICATED, /^x-aq-hotkey: expected the key's address in the generic SS58 format \(prefix 42\), 5\w+, got "1\w+"$/],
      ['request meant for another server', () => grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), sign(coord, 'Heartbeat', t0!, hb(t0!.address), { audience: ds!.address }))),
        status.UNAUTHENTICATED, /^x-aq-audience: expected this server's hotkey, 5\w+ \(actiquest\.v1\.Identity\/Who names it\), got "5\w+" \(a request meant for another server\)$/],
      ['request naming no server', () => grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), sign(coord, 'Heartbeat', t0!, hb(t0!.address), { audience: '' }))),
        status.UNAUTHENTICATED, /^x-aq-audience: expected this server's hotkey, 5\w+ .*, got none$/],
      ['audience changed after signing', () => {
        const md = sign(coord, 'Heartbeat', t0!, hb(t0!.address), { audience: ds!.address, session: false });
        md.set('x-aq-audience', leaseKey!.address);
        return grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), md));
      }, status.UNAUTHENTICATED, /^x-aq-signature-bin: expected a signature by 5\w+ over its hotkey, the server's, the method/],
      ['replayed nonce', () => grpcError(rawUnary(coord, 'Heartbeat', hb(t0!.address), replayed)), status.UNAUTHENTICATED,
        /^x-aq-nonce: expected a nonce not used before, got one 5\w+ already used \(a replayed request\)$/],
      ['hotkey not in the allowlist', () => grpcError(rawUnary(coord, 'Heartbeat', hb(mallory!.address), sign(coord, 'Heartbeat', mallory!, hb(mallory!.address)))),
        status.PERMISSION_DENIED, /^hotkey 5\w+: not admitted as a node \(not in the allowlist .*allowlist\)$/],
      ['researcher registering a trainer', () => {
        const req = { nodeId: researcher!.address, capacity: { samplesPerSecond: 10 } };
        return grpcError(rawUnary(coord, 'RegisterTrainer', req, sign(coord, 'RegisterTrainer', researcher!, req)));
      }, status.PERMISSION_DENIED, /^hotkey 5\w+: not admitted as a trainer \(the allowlist .* gives it other roles\)$/],
      ['trainer submitting a job', () => grpcError(rawUnary(jobs, 'SubmitJob', { spec: 'task: exercise' }, sign(jobs, 'SubmitJob', t0!, { spec: 'task: exercise' }))),
        status.PERMISSION_DENIED, /^hotkey 5\w+: not admitted as a researcher/],
      ['node id other than the signer', () => grpcError(rawUnary(coord, 'Heartbeat', hb(t1!.address), sign(coord, 'Heartbeat', t0!, hb(t1!.address)))),
        status.PERMISSION_DENIED, /^node_id: expected the signing hotkey's address 5\w+, got "5\w+"$/],
      ['shard without a lease', () => stream(t0, null), status.PERMISSION_DENIED, /^lease: expected a shard lease signed by the coordinator/],
      ['forged lease', () => {
        const forged = { ...lease(mallory!, ds!.address, t0!.address, [shard]), coordinator: leaseKey!.address };
        return stream(t0, forged);
      }, status.UNAUTHENTICATED, /^lease\.signature: expected the coordinator's signature over the lease's fields, got one that does not verify/],
      ['lease altered to add a shard', () => {
        const l = lease(leaseKey!, ds!.address, t0!.address, ['other']);
        return stream(t0, { ...l, shardIds: ['other', shard] });
      }, status.UNAUTHENTICATED, /^lease\.signature: /],
      ['expired lease', () => stream(t0, lease(leaseKey!, ds!.address, t0!.address, [shard], Date.now() - 5_000)), status.PERMISSION_DENIED,
        /^lease\.expires_unix_ms: expected a time still to come, got \d+\.\d s ago \(an expired lease\)$/],
      ['lease for another dataset node', () => stream(t0, lease(leaseKey!, 'elsewhere', t0!.address, [shard])), status.PERMISSION_DENIED,
        /^lease\.dataset_node_id: expected this node, 5\w+, got "elsewhere" \(a lease for another node\)$/],
      ['lease of another trainer', () => stream(t0, lease(leaseKey!, ds!.address, t1!.address, [shard])), status.PERMISSION_DENIED,
        /^lease\.trainer: expected the signing hotkey 5\w+, got "5\w+" \(another trainer's lease\)$/],
      ['lease without this shard', () => stream(t0, lease(leaseKey!, ds!.address, t0!.address, ['other'])), status.PERMISSION_DENIED,
        /^lease\.shard_ids: expected a list holding /],
      // Uploads to the data plane are checked as at the server: by the same handler, signature first.
      ['unsigned upload to the data plane', () => grpcError(callClientStream(dataPlane, 'SubmitUpdate', [upload(t0!.address)], { timeoutMs: 5000 })),
        status.UNAUTHENTICATED, /^request signature: expected x-aq-hotkey, x-aq-timestamp, x-aq-nonce and x-aq-signature-bin metadata \(this server takes signed requests only\), got none$/],
      ['upload to the data plane by a hotkey not in the allowlist', () => grpcError(callClientStream(dataPlaneAsMallory, 'SubmitUpdate', [upload(mallory!.address)], { timeoutMs: 5000 })),
        status.PERMISSION_DENIED, /^hotkey 5\w+: not admitted as a trainer \(not in the allowlist .*allowlist\)$/],
    ];
    const got: string[] = [];
    for (const [name, call, code, message] of cases) {
      const e = await call();
      got.push(`${name}: ${status[e.code]} ${e.details}`);
      expect(status[e.code], `${name}: ${e.details}`).toBe(status[code]);
      expect(e.details, name).toMatch(message);
    }
    // Requests signed with a session key are taken (as T2's were in the round), and so are
    // those signed by the hotkey itself.
    expect(await rawUnary(coord, 'Heartbeat', hb(t0!.address), sign(coord, 'Heartbeat', t0!, hb(t0!.address), { session: true }))).toBeDefined();
    expect(await rawUnary(coord, 'Heartbeat', hb(t0!.address), sign(coord, 'Heartbeat', t0!, hb(t0!.address), { session: false }))).toBeDefined();
    // A good lease still streams the shard; the researcher may list jobs.
    const good = { shardId: shard, lease: lease(leaseKey!, ds!.address, t0!.address, [shard]) };
    expect(await rawStream(data, 'StreamShard', good, sign(data, 'StreamShard', t0!, good))).toBeGreaterThan(1);
    const listed = await callUnary(asResearcher, 'ListJobs', {}, { timeoutMs: 5000 });
    expect(listed.jobs.map((j) => j.jobId)).toEqual(['job-1']);
    // The researchers' CLI signs with the hotkey it is given, and says why it is refused without one.
    const signedCli = await actiquest(['jobs', '--coordinator', c.address], { AQ_HOTKEY_URI: '//Researcher' });
    expect(signedCli.stdout).toMatch(/\njob-1\s+exercise\s+DONE\s+2\/2\s/);
    const unsignedCli = await actiquest(['jobs', '--coordinator', c.address], {});
    expect(unsignedCli.code).toBe(1);
    expect(unsignedCli.stderr).toMatch(/^actiquest jobs: UNAUTHENTICATED: request signature: expected x-aq-hotkey, .* got none\n$/);
  });

  it('runs secure aggregation with round keys signed by each trainer\'s hotkey, checked by its peers', async () => {
    h = new Harness();
    const names = ['S0', 'S1', 'S2', 'S3', 'S4'];
    const keys = await Promise.all([...names, 'SDs'].map(dev));
    const allow = path.join(h.dir, 'allowlist');
    fs.writeFileSync(allow, [...keys.slice(0, 5).map((k) => `${k.address} trainer`), `${keys[5]!.address} dataset`].join('\n'));
    const c = await h.coordinator(['--auth', 'signed', '--allowlist', allow, '--rounds', '1', '--cohort', '5', '--min-trainers', '5',
      '--hidden', '16', '--local-epochs', '1', '--validation-samples', '70', '--cohort-wait', '0']);
    await h.dataset(c.address, 'ds-secure', ['--hotkey-uri', '//SDs', '--auth', 'signed']);
    for (const t of names) await h.trainer(c.address, '', ['--hotkey-uri', `//${t}`]);
    expect(await c.done).toBe('DONE');
    const round = c.job.history[0]!;
    // One group of five, unmasked: every member took every peer's hotkey-signed keys.
    expect(round.groups).toBe(1);
    expect(new Set(round.reporters)).toEqual(new Set(keys.slice(0, 5).map((k) => k.address)));
  });

  it('a trainer accepts as secure-group peers only the hotkeys of its --peer-allowlist, and leaves a group holding another', async () => {
    h = new Harness();
    const names = ['P0', 'P1', 'P2', 'P3', 'P4'];
    const keys = await Promise.all([...names, 'PDs'].map(dev));
    const allow = path.join(h.dir, 'allowlist');
    fs.writeFileSync(allow, [...keys.slice(0, 5).map((k) => `${k.address} trainer`), `${keys[5]!.address} dataset`].join('\n'));
    // P0 accepts P1 to P3 only; the others accept all five.
    const narrow = path.join(h.dir, 'peers-narrow');
    fs.writeFileSync(narrow, keys.slice(0, 4).map((k) => k.address).join('\n'));
    const c = await h.coordinator(['--auth', 'signed', '--allowlist', allow, '--rounds', '1', '--cohort', '5', '--min-trainers', '3',
      '--hidden', '16', '--local-epochs', '1', '--validation-samples', '70', '--cohort-wait', '0', '--stage-timeout', '2']);
    await h.dataset(c.address, 'ds-peers', ['--hotkey-uri', '//PDs', '--auth', 'signed']);
    for (const [i, t] of names.entries()) {
      await h.trainer(c.address, '', ['--hotkey-uri', `//${t}`, '--peer-allowlist', i === 0 ? narrow : allow, '--log-file', h.logFile(`trainer-${t}`)]);
    }
    expect(await c.done).toBe('DONE');
    const round = c.job.history[0]!;
    // P0 refused the group (P4 is no peer of its) before revealing anything; the other four finished it.
    expect(round.groups).toBe(1);
    expect(new Set(round.reporters)).toEqual(new Set(keys.slice(1, 5).map((k) => k.address)));
    expect(fs.readFileSync(h.logFile('trainer-P0'), 'utf8')).toContain(`key advertisement of ${keys[4]!.address}: it is not an admitted hotkey (not on the metagraph or the allowlist)`);
  });
  it('a trainer that learned a coordinator\'s hotkey from it learns it again when the coordinator restarts under another', async () => {
    h = new Harness();
    const port = await freePort();
    // No --lease-key and no chain: each start signs, and names itself, with a key of its own.
    const flags = ['--listen', `127.0.0.1:${port}`, '--auth', 'signed', '--secure-aggregation', 'false', '--rounds', '1', '--cohort', '2', '--min-trainers', '2',
      '--hidden', '8', '--validation-samples', '70', '--heartbeat-interval-ms', '200'];
    const first = await h.coordinator([...flags, '--out', path.join(h.dir, 'c1')]);
    await h.trainer(first.address, '', ['--hotkey-uri', '//Returning', '--log-level', 'info']);
    const log = () => fs.readFileSync(h.logFile('trainer-'), 'utf8');
    const registered = () => log().split('\n').filter((l) => l.includes('"msg":"registered"')).length;
    await until(() => registered() >= 1, 'the first registration', 30_000);
    await first.close();
    const second = await h.coordinator([...flags, '--out', path.join(h.dir, 'c2')]);
    expect(second.leaseKey).not.toBe(first.leaseKey);
    await until(() => registered() >= 2, 'a registration with the restarted coordinator', 60_000, () => log().slice(-2000));
  }, 120_000);
});
