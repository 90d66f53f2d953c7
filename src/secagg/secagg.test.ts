/**
 * SecAgg+ end to end in one process (both halves, no network): the unmasked group sum equals
 * the plaintext weighted sum within the quantization bound, with dropouts at every stage.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateIdentity, type Identity } from '../crypto/index.js';
import { Random } from '../util/index.js';
import { signerFromSecret, sr25519Ready, verifySr25519 } from '../wire/index.js';
import { decodeAddress } from '@polkadot/util-crypto';
import { SecAggGroup } from './coordinator.js';
import { FileSum, MemorySum } from './group-sum.js';
import { INLINE_WORDS, MaskPool, sharedWords } from './mask-pool.js';
import { SecAggNode } from './node.js';
import { defaultNeighbours, defaultThreshold, survivorSetMessage, type EncryptedShare, type KeyAdvertisement, type SecAggParams } from './constants.js';
import { neighbourGraph } from './graph.js';
import { quantBitsFor, quantErrorBound, quantizeWeighted, seededWords } from './quantize.js';
import {
  CorruptUnmaskShareError, DuplicateMessageError, ForgedAdvertisementError, GroupBelowThresholdError, NotAMemberError, PartialInputError, StageError, UnsafeUnmaskError, UpdateLengthError,
} from '../errors.js';

interface Setup {
  params: SecAggParams;
  ids: Map<string, Identity>;
  identities: Map<string, Uint8Array>;
  nodes: Map<string, SecAggNode>;
  group: SecAggGroup;
  updates: Map<string, { x: Float32Array; n: number }>;
}

function setup(n: number, P: number, opts: { k?: number; t?: number; clip?: number; roundId?: string } = {}): Setup {
  const members = Array.from({ length: n }, (_, i) => `node-${String(i).padStart(3, '0')}`);
  const k = opts.k ?? defaultNeighbours(n);
  const params: SecAggParams = {
    roundId: opts.roundId ?? 'job/1/1', groupId: 'g0', members, neighbours: k, threshold: opts.t ?? defaultThreshold(Math.min(k, n - 1)),
    clipRange: opts.clip ?? 4, quantBits: quantBitsFor(n), vectorLength: P + 1, maxWeight: 100, seed: randomBytes(32),
  };
  const ids = new Map(members.map((m) => [m, generateIdentity()]));
  const identities = new Map([...ids].map(([m, id]) => [m, id.publicKey as Uint8Array]));
  const rng = new Random(`updates-${n}-${P}`);
  const updates = new Map(members.map((m) => [m, {
    x: Float32Array.from({ length: P }, () => rng.normal(0, 0.5)),
    n: 1 + rng.int(100),
  }]));
  return {
    params, ids, identities, updates,
    nodes: new Map(members.map((m) => [m, new SecAggNode(params, m, ids.get(m)!)])),
    group: new SecAggGroup(params, identities),
  };
}

/**
 * Runs the protocol; `drop[stage]` lists nodes that vanish before sending that stage's message.
 * `pieceWords`: each input is read in pieces of that many words; `pool`: each is handed over as
 * chunks (`chunksOf`), added in the pool's threads.
 */
async function run(s: Setup, drop: Partial<Record<'advertise' | 'share' | 'masked' | 'unmask', string[]>> = {}, pieceWords = 0, pool?: MaskPool, spoolDir?: string) {
  const { group, nodes } = s;
  const gone = new Set<string>();
  const live = () => [...nodes.keys()].filter((m) => !gone.has(m));
  const vanish = (list?: string[]) => { for (const m of list ?? []) { gone.add(m); group.drop(m); } };

  vanish(drop.advertise);
  for (const m of live()) group.receiveAdvertisement(m, nodes.get(m)!.advertise());
  expect(group.stageComplete).toBe(true);
  if (!group.closeStage()) return { failedAt: 'ADVERTISE_KEYS' as const };

  vanish(drop.share);
  for (const m of live()) group.receiveShares(m, await nodes.get(m)!.shareKeys(group.advertisementsFor(m), s.identities));
  if (!group.closeStage()) return { failedAt: 'SHARE_KEYS' as const };

  vanish(drop.masked);
  const received: Uint32Array[] = [];
  const handed: Uint8Array[] = [];
  for (const m of live()) {
    const node = nodes.get(m)!;
    node.receiveShares(group.sharesFor(m));
    const u = s.updates.get(m)!;
    const y = node.maskInput(u.x, u.n);
    received.push(new Uint32Array(y));
    if (pieceWords > 0) {
      // Read back in pieces, as the coordinator reads a spooled upload: one buffer, refilled.
      const buf = new Uint32Array(pieceWords);
      group.receiveMaskedInput(m, {
        length: y.length,
        *pieces() {
          for (let at = 0; at < y.length; at += pieceWords) {
            const n = Math.min(pieceWords, y.length - at);
            buf.set(y.subarray(at, at + n));
            yield buf.subarray(0, n);
          }
        },
      });
    } else if (pool && spoolDir) {
      // Spooled to a file, as an upload past the memory budget is: the thread reads it.
      const file = path.join(spoolDir, `${m}.part`);
      fs.writeFileSync(file, y);
      group.receiveMaskedInput(m, { length: y.length, pieces: () => { throw new Error('read on the event loop'); }, file: () => ({ path: file, bytes: y.byteLength, done: () => fs.rmSync(file) }) }, pool);
    } else if (pool) {
      const chunks = chunksOf(y);
      handed.push(...chunks);
      group.receiveMaskedInput(m, { length: y.length, pieces: () => { throw new Error('read whole'); }, chunks: () => ({ chunks, done: () => {} }) }, pool);
    } else {
      group.receiveMaskedInput(m, y);
    }
  }
  if (!group.closeStage()) return { failedAt: 'MASKED_INPUT' as const, received };

  const inSum = live();
  // CONSISTENCY: every survivor signs the set it is given.
  for (const m of live()) group.receiveConsistency(m, nodes.get(m)!.signSurvivors(group.survivorSet()));
  if (!group.closeStage()) return { failedAt: 'CONSISTENCY' as const, received };
  vanish(drop.unmask);
  const req = group.unmaskRequest();
  for (const m of live()) group.receiveUnmask(m, nodes.get(m)!.unmask(req));
  await group.folded();
  const maskedSum = group.maskedSum();
  const result = await group.finish(pool);
  return { result, inSum, received, maskedSum, handed };
}

/**
 * Runs a group to the end of MASKED_INPUT, every member but `silent` sending its input; the stage
 * closes after `beforeClose`.
 */
async function throughMaskedInput(s: Setup, silent?: string, beforeClose?: () => void, open: string[] = []): Promise<Map<string, Uint32Array>> {
  const { group: g, nodes } = s;
  for (const [m, n] of nodes) g.receiveAdvertisement(m, n.advertise());
  g.closeStage();
  for (const [m, n] of nodes) g.receiveShares(m, await n.shareKeys(g.advertisementsFor(m), s.identities));
  g.closeStage();
  const unsent = new Map<string, Uint32Array>();
  for (const [m, n] of nodes) {
    n.receiveShares(g.sharesFor(m));
    const y = n.maskInput(s.updates.get(m)!.x, s.updates.get(m)!.n);
    if (open.includes(m)) unsent.set(m, y);
    else if (m !== silent) g.receiveMaskedInput(m, y);
  }
  // Members in `open` have not sent theirs (returned): the stage stays open for the caller.
  if (open.length > 0) return unsent;
  beforeClose?.();
  g.closeStage();
  return unsent;
}

/**
 * A masked input's bytes as an upload brings them, at odd boundaries: chunks that own their
 * memory (messages) and chunks that share one buffer (as Node's pooled small buffers do).
 */
function chunksOf(y: Uint32Array): Uint8Array[] {
  const bytes = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
  // Half of an 8 KiB buffer, as Node pools small buffers.
  const shared = new Uint8Array(8192);
  shared.set(bytes.subarray(0, 4096));
  const out = [shared.subarray(0, 1), shared.subarray(1, 8), shared.subarray(8, 4096)];
  for (let at = 4096, k = 0; at < bytes.length; k++) {
    const n = Math.min(bytes.length - at, (1 << 18) + 3 + k);
    out.push(bytes.slice(at, at + n));
    at += n;
  }
  return out;
}

function plainSum(s: Setup, members: string[]): { sum: Float64Array; weight: number } {
  const P = s.params.vectorLength - 1;
  const sum = new Float64Array(P);
  let weight = 0;
  for (const m of members) {
    const u = s.updates.get(m)!;
    for (let i = 0; i < P; i++) sum[i]! += u.n * u.x[i]!;
    weight += u.n;
  }
  return { sum, weight };
}

/** Asserts the group result equals the plaintext weighted sum within the stated bound. */
function expectExact(s: Setup, result: { weightedSum: Float32Array; totalWeight: number; members: string[] }, members: string[]) {
  expect(result.members).toEqual([...members].sort());
  const { sum, weight } = plainSum(s, members);
  // Per coordinate: m rounding errors of < 1 step on weights numSamples / maxWeight, scaled back
  // by maxWeight; plus float32 rounding of the result.
  const bound = s.params.maxWeight * quantErrorBound(members.length, s.params.clipRange, s.params.quantBits);
  let worst = 0;
  for (let i = 0; i < sum.length; i++) {
    const err = Math.abs(result.weightedSum[i]! - sum[i]!) - Math.abs(sum[i]!) * 1.2e-7;
    worst = Math.max(worst, err);
  }
  expect(worst).toBeLessThanOrEqual(bound);
  expect(Math.abs(result.totalWeight - weight)).toBeLessThanOrEqual(bound);
  // and the bound is tight enough to matter: far below the size of an update
  expect(bound).toBeLessThan(1e-3);
}

describe('SecAgg+ sums', () => {
  it.each([
    [5, 4, 3],    // a group of 5: full graph
    [8, 4, 3],    // sparse graph
    [12, 6, 4],
    [20, 10, 6],
    [7, 6, 6],    // threshold = k
  ])('n=%i k=%i t=%i: equals the plaintext weighted sum within the quantization bound', async (n, k, t) => {
    const s = setup(n, 257, { k, t });
    const out = await run(s);
    expectExact(s, out.result!, [...s.nodes.keys()]);
  });

  it('folds a masked input read in pieces (one buffer refilled) exactly as one given whole', async () => {
    const s = setup(6, 1000, { k: 4, t: 3 });
    const out = await run(s, { masked: ['node-002'] }, 97);
    expectExact(s, out.result!, out.inSum!);
  });

  it('adds masked inputs handed over as chunks in the pool\'s threads exactly as given whole, moving the chunks that own their memory, and lets go of its words only once the additions end', async () => {
    const pool = new MaskPool(2);
    try {
      const s = setup(5, INLINE_WORDS + 999, { k: 4, t: 3 });
      const out = await run(s, { masked: ['node-003'] }, 0, pool);
      expectExact(s, out.result!, out.inSum!);
      // Messages moved to the threads, not copied: empty here. Slices of one buffer were copied.
      const handed = out.handed!;
      expect(handed.filter((c) => c.byteLength === 0).length).toBe(handed.length - 3 * 4);
      expect(handed.filter((c) => c.byteLength > 0).every((c) => c.buffer.byteLength === 8192)).toBe(true);

      // Words let go while an addition runs are given back for reuse only after it.
      const t = setup(5, INLINE_WORDS + 999, { k: 4, t: 3 });
      const words = new MemorySum(t.params.vectorLength);
      const g = new SecAggGroup(t.params, t.identities, words);
      const buffer = words.load().buffer;
      t.group = g;
      const y = (await throughMaskedInput(t, undefined, undefined, ['node-000'])).get('node-000')!;
      g.receiveMaskedInput('node-000', { length: t.params.vectorLength, pieces: () => [], chunks: () => ({ chunks: chunksOf(y), done: () => {} }) }, pool);
      g.release(true);
      expect(sharedWords(t.params.vectorLength).buffer).not.toBe(buffer);
      await g.folded();
      expect(sharedWords(t.params.vectorLength).buffer).toBe(buffer);
    } finally {
      await pool.close();
    }
  });

  it('adds masked inputs handed over as files in the pool\'s threads exactly as given whole, and is done with each file once it is added', async () => {
    const pool = new MaskPool(2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-fold-'));
    try {
      const s = setup(5, INLINE_WORDS + 999, { k: 4, t: 3 });
      const out = await run(s, { masked: ['node-003'] }, 0, pool, dir);
      expectExact(s, out.result!, out.inSum!);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      await pool.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('adds masked inputs, as chunks or as files, into a sum kept in a file in the pool\'s threads exactly as into one in memory', async () => {
    const pool = new MaskPool(2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-fold-'));
    try {
      for (const spooled of [false, true]) {
        const s = setup(5, INLINE_WORDS + 999, { k: 4, t: 3 });
        // Neither way reads the input on this thread (run's `pieces` throw): the threads read it.
        const sum = new FileSum(path.join(dir, `sum-${spooled}`), s.params.vectorLength);
        s.group = new SecAggGroup(s.params, s.identities, sum);
        const spool = path.join(dir, 'spool');
        if (spooled) fs.mkdirSync(spool);
        const out = await run(s, { masked: ['node-001'] }, 0, pool, spooled ? spool : undefined);
        expectExact(s, out.result!, out.inSum!);
        // The file holds exactly the masked inputs' sum mod 2^32.
        const expected = new Uint32Array(s.params.vectorLength);
        for (const y of out.received!) for (let i = 0; i < y.length; i++) expected[i] = (expected[i]! + y[i]!) >>> 0;
        expect(out.maskedSum).toEqual(expected);
        if (spooled) expect(fs.readdirSync(spool)).toEqual([]);
      }
    } finally {
      await pool.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads a sum kept in a file into shared memory off the event loop, as the file holds it; a released sum is not read', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-sum-read-'));
    try {
      const sum = new FileSum(path.join(dir, 'sum'), 3 * 1024 * 1024 + 5);
      sum.add(Uint32Array.from({ length: 1000 }, (_, i) => i * 7919), 2 * 1024 * 1024);
      sum.add(new Uint32Array(5).fill(0xffffffff), sum.length - 5);
      sum.add(new Uint32Array(5).fill(2), sum.length - 5);
      const words = await sum.read();
      expect(words.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(words).toEqual(sum.copy());
      expect(words[2 * 1024 * 1024 + 999]).toBe(999 * 7919);
      expect([...words.subarray(-5)]).toEqual([1, 1, 1, 1, 1]);
      expect(await sum.read()).toBe(words);
      const other = new FileSum(path.join(dir, 'other'), 10);
      other.release();
      await expect(other.read()).rejects.toThrow(/the group's sum was released/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a piece source that fails before a piece changes nothing; one that fails part-way fails the group, naming the member', async () => {
    const s = setup(5, 100);
    const g = s.group;
    const failing = (after: number) => ({
      length: 101,
      *pieces() {
        for (let i = 0; i < after; i++) yield new Uint32Array(10).fill(7);
        throw new Error('EIO: the spool file could not be read');
      },
    });
    await throughMaskedInput(s, undefined, undefined, ['node-003', 'node-004']);
    const before = g.maskedSum();
    expect(() => g.receiveMaskedInput('node-003', failing(0))).toThrow('EIO');
    expect(g.stage).toBe('MASKED_INPUT');
    expect(g.maskedSum()).toEqual(before);
    expect(() => g.receiveMaskedInput('node-003', { length: 100, pieces: () => [] })).toThrow(UpdateLengthError);
    expect(() => g.receiveMaskedInput('node-004', failing(2))).toThrow('EIO');
    expect(g.stage).toBe('FAILED');
    expect(g.error).toBeInstanceOf(PartialInputError);
    expect(g.error!.message).toBe("group g0: node-004's masked input was folded into the sum in part (EIO: the spool file could not be read); the group's sum is lost");
  });

  it('survives a dropout after advertising (before sharing keys)', async () => {
    const s = setup(8, 100, { k: 4, t: 3 });
    const out = await run(s, { share: ['node-002'] });
    expectExact(s, out.result!, [...s.nodes.keys()].filter((m) => m !== 'node-002'));
  });

  it('survives dropouts before advertising, after sharing and during unmask', async () => {
    // k = 8 of 10: whichever four leave, every node keeps at least t of its neighbours.
    const s = setup(10, 100, { k: 8, t: 3 });
    const out = await run(s, { advertise: ['node-009'], masked: ['node-001', 'node-004'], unmask: ['node-006'] });
    // node-006 sent its masked input, so it is in the sum even though it left before unmasking.
    expectExact(s, out.result!, [...s.nodes.keys()].filter((m) => !['node-009', 'node-001', 'node-004'].includes(m)));
  });

  it('survives a dropout after masked input (during unmask) in a full group of 5', async () => {
    const s = setup(5, 64);
    const out = await run(s, { unmask: ['node-003'] });
    expectExact(s, out.result!, [...s.nodes.keys()]);
  });

  it('fails a group that falls below t, at the stage where it does', async () => {
    const s = setup(5, 16, { k: 4, t: 4 });
    expect(await run(s, { masked: ['node-000', 'node-001'] })).toMatchObject({ failedAt: 'MASKED_INPUT' });
    expect(s.group.stage).toBe('FAILED');
    expect(s.group.error).toBeInstanceOf(GroupBelowThresholdError);
    expect(s.group.error!.message).toBe('group g0 at MASKED_INPUT: expected at least 4 members, got 3');
    const s2 = setup(5, 16, { k: 4, t: 4 });
    expect(await run(s2, { advertise: ['node-000', 'node-004'] })).toMatchObject({ failedAt: 'ADVERTISE_KEYS' });
  });

  it('fails at unmask when too few survivors answer to rebuild a secret', async () => {
    const s = setup(5, 16, { k: 4, t: 4 });
    await expect(run(s, { unmask: ['node-000', 'node-001'] })).rejects.toThrow(GroupBelowThresholdError);
    expect(s.group.stage).toBe('FAILED');
  });

  it('never holds a single quantized update: each masked input and the masked sum look nothing like one', async () => {
    const s = setup(5, 4096);
    const out = await run(s);
    const rng = new Random(1);
    for (const [m, u] of s.updates) {
      const q = quantizeWeighted(u.x, u.n / s.params.maxWeight, s.params.clipRange, s.params.quantBits, seededWords(rng));
      for (const y of [...out.received!, out.maskedSum!]) {
        let close = 0;
        for (let i = 0; i < q.length; i++) if (Math.abs(y[i]! - q[i]!) < 2 ** 20) close++;
        // Uniform masks: a word falls within 2^20 of the plaintext with probability 2^-11.
        expect(close, `${m}`).toBeLessThan(q.length * 0.01);
      }
    }
  });
});

describe('SecAgg+ neighbour graph', () => {
  it('is k-regular, symmetric, seeded, and complete when k >= n - 1', () => {
    const members = Array.from({ length: 30 }, (_, i) => `n${i}`);
    const seed = randomBytes(32);
    const g = neighbourGraph(members, 8, seed);
    for (const [m, ns] of g) {
      expect(ns.size).toBe(8);
      expect(ns.has(m)).toBe(false);
      for (const j of ns) expect(g.get(j)!.has(m)).toBe(true);
    }
    expect([...neighbourGraph(members, 8, seed).get('n0')!].sort()).toEqual([...g.get('n0')!].sort());
    expect([...neighbourGraph(members, 8, randomBytes(32)).get('n0')!].sort()).not.toEqual([...g.get('n0')!].sort());
    for (const ns of neighbourGraph(members.slice(0, 5), 4, seed).values()) expect(ns.size).toBe(4);
    expect(() => neighbourGraph(members, 5, seed)).toThrow(/even k/);
  });
});

describe('SecAgg+ node half: stage transitions', () => {
  it('runs advertise, share, receive, mask, unmask in order and refuses everything out of order', async () => {
    const s = setup(5, 8);
    const node = s.nodes.get('node-000')!;
    expect(() => node.maskInput(new Float32Array(8), 1)).toThrow(new StageError('secagg node node-000', 'ADVERTISE_KEYS', 'MASKED_INPUT'));
    expect(() => node.unmask({ survivors: [], dropped: [], signatures: [] })).toThrow('secagg node node-000: expected stage ADVERTISE_KEYS, got UNMASK');
    await expect(node.shareKeys([], s.identities)).rejects.toThrow('expected stage ADVERTISE_KEYS, got SHARE_KEYS');
    const ads = [...s.nodes.values()].map((n) => n.advertise());
    expect(() => node.advertise()).toThrow('expected stage SHARE_KEYS, got ADVERTISE_KEYS');
    expect(() => node.receiveShares([])).toThrow('expected stage SHARE_KEYS, got RECEIVE_SHARES');
    const shares = new Map<string, EncryptedShare[]>();
    for (const [m, n] of s.nodes) shares.set(m, await n.shareKeys(ads.filter((a) => a.nodeId !== m), s.identities));
    await expect(node.shareKeys(ads, s.identities)).rejects.toThrow('expected stage RECEIVE_SHARES, got SHARE_KEYS');
    const mine = [...shares.values()].flat().filter((x) => x.to === 'node-000');
    expect(() => node.maskInput(new Float32Array(8), 1)).toThrow('expected stage RECEIVE_SHARES, got MASKED_INPUT');
    node.receiveShares(mine);
    expect(() => node.receiveShares(mine)).toThrow('expected stage MASKED_INPUT, got RECEIVE_SHARES');
    expect(() => node.maskInput(new Float32Array(7), 1)).toThrow('update length: expected 8 float32 parameters, got 7');
    expect(() => node.maskInput(new Float32Array(8), 101)).toThrow('num_samples: expected 1 to 100, got 101');
    node.maskInput(new Float32Array(8), 10);
    expect(() => node.maskInput(new Float32Array(8), 10)).toThrow('expected stage CONSISTENCY, got MASKED_INPUT');
    const all = [...s.nodes.keys()];
    expect(() => node.unmask({ survivors: all, dropped: [], signatures: [] })).toThrow('expected stage CONSISTENCY, got UNMASK');
    expect(() => node.signSurvivors({ survivors: all, dropped: ['node-001'] })).toThrow(new UnsafeUnmaskError('node-001 is listed both as surviving and as dropped'));
    expect(() => node.signSurvivors({ survivors: ['node-000', 'node-001'], dropped: [] })).toThrow('unmask refused: only 2 survivors, the threshold is 3');
    expect(() => node.signSurvivors({ survivors: ['node-001', 'node-002', 'node-003'], dropped: [] })).toThrow('this node (node-000) is not listed as surviving');
    const set = { survivors: all.filter((m) => m !== 'node-004'), dropped: ['node-004'] };
    const mine2 = node.signSurvivors(set);
    const sigOf = (m: string) => ({ nodeId: m, signature: Buffer.from(s.ids.get(m)!.sign(survivorSetMessage(s.params, set))), hotkeySignature: Buffer.alloc(0) });
    const reveals = node.unmask({ ...set, signatures: [mine2, sigOf('node-001'), sigOf('node-002')] });
    expect(reveals.find((r) => r.owner === 'node-004')!.kind).toBe('mask-key');
    expect(reveals.filter((r) => r.kind === 'self-seed')).toHaveLength(3);
    // Asked again (a replayed or changed request): refused, so it can never reveal both secrets of one owner.
    expect(() => node.unmask({ survivors: all, dropped: [], signatures: [] })).toThrow('expected stage DONE, got UNMASK');
  });

  it('refuses a forged advertisement relayed by the coordinator and drops out', async () => {
    const s = setup(5, 8);
    const ads = [...s.nodes.values()].map((n) => n.advertise());
    const victim = s.nodes.get('node-000')!;
    // The coordinator swaps node-001's mask key for one it controls, keeping the old signature.
    const forged: KeyAdvertisement[] = ads.map((a) => (a.nodeId === 'node-001' ? { ...a, maskKey: randomBytes(32) } : a));
    await expect(victim.shareKeys(forged, s.identities)).rejects.toThrow(new ForgedAdvertisementError('node-001', 'the signature does not verify'));
    expect(victim.expecting).toBe('ABORTED');
    // Or re-signs with a key of its own.
    const other = s.nodes.get('node-002')!;
    const impostor = generateIdentity();
    const resigned = ads.map((a) => (a.nodeId === 'node-003' ? { ...a, identityKey: impostor.publicKey } : a));
    await expect(other.shareKeys(resigned, s.identities)).rejects.toThrow('key advertisement of node-003: its identity key is not the one registered');
  });

  it('refuses shares that do not open, or are for another node', async () => {
    const s = setup(5, 8);
    const ads = [...s.nodes.values()].map((n) => n.advertise());
    const all = new Map<string, EncryptedShare[]>();
    for (const [m, n] of s.nodes) all.set(m, await n.shareKeys(ads.filter((a) => a.nodeId !== m), s.identities));
    const node = s.nodes.get('node-000')!;
    const forOther = all.get('node-001')!.find((x) => x.to === 'node-002')!;
    expect(() => node.receiveShares([forOther])).toThrow(/shares: expected shares for node-000/);
    const mine = all.get('node-001')!.find((x) => x.to === 'node-000')!;
    const tampered = { ...mine, ciphertext: Buffer.from(mine.ciphertext.map((b, i) => (i === 40 ? b ^ 1 : b))) };
    expect(() => node.receiveShares([tampered])).toThrow(/share from node-001: expected a share sealed for this round/);
  });
});

describe('SecAgg+ coordinator half: stage transitions', () => {
  it('refuses messages of the wrong stage, from non-members, duplicates and replays', async () => {
    const s = setup(5, 8);
    const g = s.group;
    const ads = [...s.nodes.values()].map((n) => n.advertise());
    expect(() => g.receiveShares('node-000', [])).toThrow(new StageError('group g0', 'ADVERTISE_KEYS', 'SHARE_KEYS'));
    expect(() => g.receiveMaskedInput('node-000', new Uint32Array(9))).toThrow('group g0: expected stage ADVERTISE_KEYS, got MASKED_INPUT');
    // Asking for a stage's data is told the same way as sending it: the stage the group is in, then the one asked about.
    expect(() => g.advertisementsFor('node-000')).toThrow('group g0: expected stage ADVERTISE_KEYS, got SHARE_KEYS');
    expect(() => g.receiveAdvertisement('stranger', ads[0]!)).toThrow(new NotAMemberError('stranger', 'g0', 'is not a member'));
    expect(() => g.receiveAdvertisement('node-001', ads[0]!)).toThrow('advertisement.node_id: expected "node-001", got "node-000"');
    g.receiveAdvertisement('node-000', ads[0]!);
    expect(() => g.receiveAdvertisement('node-000', ads[0]!)).toThrow(new DuplicateMessageError('g0', 'ADVERTISE_KEYS', 'node-000'));
    // A replay of the same node's advertisement from another round does not verify here.
    const old = setup(5, 8, { roundId: 'job/1/0' });
    const oldNode = new SecAggNode({ ...old.params, members: s.params.members }, 'node-001', s.ids.get('node-001')!);
    expect(() => g.receiveAdvertisement('node-001', oldNode.advertise())).toThrow('key advertisement of node-001: the signature does not verify');
    expect(() => g.receiveAdvertisement('node-002', { ...ads[2]!, identityKey: generateIdentity().publicKey })).toThrow(ForgedAdvertisementError);
    for (const a of ads.slice(1)) g.receiveAdvertisement(a.nodeId, a);
    expect(g.closeStage()).toBe(true);
    expect(g.stage).toBe('SHARE_KEYS');
    expect(() => g.receiveAdvertisement('node-000', ads[0]!)).toThrow('expected stage SHARE_KEYS, got ADVERTISE_KEYS');
    const sh = await s.nodes.get('node-000')!.shareKeys(g.advertisementsFor('node-000'), s.identities);
    expect(() => g.receiveShares('node-000', sh.map((x) => ({ ...x, from: 'node-001' })))).toThrow('shares.from: expected "node-000", got "node-001"');
    expect(() => g.receiveShares('node-000', [...sh, sh[0]!])).toThrow('shares.to: expected each neighbour once, got node-001 twice');
    g.receiveShares('node-000', sh);
    expect(() => g.receiveShares('node-000', sh)).toThrow(DuplicateMessageError);
    g.drop('node-004');
    expect(() => g.receiveShares('node-004', [])).toThrow('group g0: node node-004 dropped out before SHARE_KEYS');
    await expect(g.finish()).rejects.toThrow('expected stage SHARE_KEYS, got UNMASK');
  });

  it('refuses a corrupted or truncated unmask share, naming its sender, and rebuilds every secret from the good shares of the rest', async () => {
    const s = setup(6, 8, { k: 5, t: 3 });
    const { group: g, nodes } = s;
    await throughMaskedInput(s, 'node-005');
    const survivors = [...nodes.keys()].filter((x) => x !== 'node-005');
    for (const m of survivors) g.receiveConsistency(m, nodes.get(m)!.signSurvivors(g.survivorSet()));
    g.closeStage();
    const req = g.unmaskRequest();
    const reveals = new Map(survivors.map((m) => [m, nodes.get(m)!.unmask(req)]));
    // node-000 flips a byte in every share it reveals: the survivors' self seeds and the dropped member's mask key.
    const flipped = reveals.get('node-000')!.map((r) => ({ ...r, share: Buffer.from(Buffer.from(r.share).map((b, i) => (i === 1 ? b ^ 0xff : b))) }));
    expect(() => g.receiveUnmask('node-000', flipped)).toThrow(CorruptUnmaskShareError);
    expect(() => g.receiveUnmask('node-000', flipped)).toThrow(/^group g0 at UNMASK: node-000 revealed a share of node-00\d that its owner did not deal \(a share its owner's signature does not cover\); its shares are refused$/);
    // node-001 sends one a byte short, then its true shares, which are taken.
    const short = reveals.get('node-001')!.map((r, i) => (i === 0 ? { ...r, share: r.share.subarray(0, 32) } : r));
    expect(() => g.receiveUnmask('node-001', short)).toThrow(/^group g0 at UNMASK: node-001 revealed a share of node-00\d that its owner did not deal \(32 bytes, not 33\)/);
    for (const m of survivors.slice(1)) g.receiveUnmask(m, reveals.get(m)!);
    // t = 3 good shares of every secret remain: the sum is exact, as if no one had lied.
    expectExact(s, await g.finish(), survivors);
  });

  it('refuses unmask shares of the wrong kind, so it never holds both secrets of one node', async () => {
    const s = setup(6, 8, { k: 5, t: 3 });
    const { group: g, nodes } = s;
    await throughMaskedInput(s, 'node-005', () => expect(() => g.receiveMaskedInput('node-000', new Uint32Array(9))).toThrow(DuplicateMessageError));
    for (const m of [...nodes.keys()].filter((x) => x !== 'node-005')) g.receiveConsistency(m, nodes.get(m)!.signSurvivors(g.survivorSet()));
    g.closeStage();
    const req = g.unmaskRequest();
    expect(req.dropped).toEqual(['node-005']);
    // A dishonest node that reveals the self seed of the dropped node is refused.
    const honest = nodes.get('node-000')!.unmask(req);
    const liar = honest.map((r) => (r.owner === 'node-005' ? { ...r, kind: 'self-seed' as const } : r));
    expect(() => g.receiveUnmask('node-000', liar)).toThrow('unmask share of node-005: expected mask-key, got self-seed');
    g.receiveUnmask('node-000', honest);
    expect(() => g.receiveUnmask('node-005', [])).toThrow('node node-005 dropped out before UNMASK');
  });
});

describe('SecAgg+ round keys bound to hotkeys the coordinator does not hold', () => {
  /** Five members whose node ids are sr25519 hotkeys, and a binding for each. */
  async function hotkeyGroup() {
    await sr25519Ready();
    const signers = await Promise.all([0, 1, 2, 3, 4].map((i) => signerFromSecret(`//SecAggMember${i}`)));
    const members = signers.map((s) => s.address).sort();
    const params: SecAggParams = {
      roundId: 'job/3/1', groupId: 'g0', members, neighbours: 4, threshold: 3, clipRange: 4, quantBits: quantBitsFor(5), vectorLength: 9, maxWeight: 10, seed: randomBytes(32),
    };
    const verify = (peer: string, m: Uint8Array, sig: Uint8Array) => {
      try {
        return verifySr25519(m, sig, decodeAddress(peer));
      } catch {
        return false;
      }
    };
    const ids = new Map(members.map((m) => [m, generateIdentity()]));
    const identities = new Map([...ids].map(([m, id]) => [m, id.publicKey as Uint8Array]));
    const bindingOf = (m: string) => ({ sign: (msg: Uint8Array) => signers.find((s) => s.address === m)!.sign(msg), verify });
    return { params, members, ids, identities, bindingOf, verify };
  }

  it('honest members accept each other; a coordinator that swaps a member\'s keys is caught by every neighbour before anything is revealed', async () => {
    const g = await hotkeyGroup();
    const nodes = g.members.map((m) => new SecAggNode(g.params, m, g.ids.get(m)!, g.bindingOf(m)));
    const ads = nodes.map((n) => n.advertise());
    // Honest: every node takes its neighbours' advertisements.
    const honest = new SecAggNode(g.params, g.members[0]!, g.ids.get(g.members[0]!)!, g.bindingOf(g.members[0]!));
    honest.advertise();
    expect((await honest.shareKeys(ads, g.identities)).length).toBe(4);
    // The coordinator replaces the victim's keys with its own, signs them with an identity key of
    // its own, and relays that identity key as the victim's: everything it controls is consistent.
    const victim = g.members[1]!;
    const evil = generateIdentity();
    const fake = { nodeId: victim, encKey: Buffer.from(randomBytes(32)), maskKey: Buffer.from(randomBytes(32)) };
    const { advertisementMessage } = await import('./constants.js');
    const forged = { ...fake, identityKey: evil.publicKey, signature: evil.sign(advertisementMessage(g.params, fake)), hotkeySignature: ads[1]!.hotkeySignature };
    const relayed = new Map(g.identities).set(victim, evil.publicKey);
    const swapped = ads.map((a) => (a.nodeId === victim ? forged : a));
    for (const m of g.members.filter((x) => x !== victim)) {
      const n = new SecAggNode(g.params, m, g.ids.get(m)!, g.bindingOf(m));
      n.advertise();
      if (!n.neighbours.has(victim)) continue;
      await expect(n.shareKeys(swapped, relayed)).rejects.toThrow(new ForgedAdvertisementError(victim, 'its hotkey signature does not verify (keys not signed by the hotkey its node id names)'));
      expect(n.expecting).toBe('ABORTED');
    }
    // Without hotkeys (an open federation) the same swap is taken: the documented weaker guarantee.
    const open = new SecAggNode(g.params, g.members[0]!, g.ids.get(g.members[0]!)!);
    open.advertise();
    expect((await open.shareKeys(swapped, relayed)).length).toBe(4);
  });

  it('refuses a peer that is not an admitted hotkey, and one whose node id is no hotkey at all', async () => {
    const g = await hotkeyGroup();
    const nodes = g.members.map((m) => new SecAggNode(g.params, m, g.ids.get(m)!, g.bindingOf(m)));
    const ads = nodes.map((n) => n.advertise());
    const outsider = g.members[2]!;
    const me = g.members[0]!;
    const strict = new SecAggNode(g.params, me, g.ids.get(me)!, { ...g.bindingOf(me), admitted: (peer: string) => peer !== outsider });
    strict.advertise();
    await expect(strict.shareKeys(ads, g.identities)).rejects.toThrow(new ForgedAdvertisementError(outsider, 'it is not an admitted hotkey (not on the metagraph or the allowlist)'));
    expect(g.verify('node-000', Buffer.from('x'), Buffer.alloc(64))).toBe(false);
  });
});

describe('SecAgg+ consistency round (Bonawitz et al. 2017, section 4)', () => {
  it('a coordinator that names different survivor sets to different members gets nothing that isolates one update', async () => {
    const s = setup(6, 8, { k: 5, t: 3 });
    const { group: g, nodes } = s;
    await throughMaskedInput(s);
    const all = [...nodes.keys()];
    const target = 'node-005';
    // The attack: tell node-000 that the target dropped (for a share of its mask key) and the others
    // that it survived (for shares of its self seed): with both, the target's update is in the clear.
    const lie = { survivors: all.filter((m) => m !== target), dropped: [target] };
    const truth = g.survivorSet();
    const liedTo = nodes.get('node-000')!;
    const sigLie = liedTo.signSurvivors(lie);
    const sigsTruth = all.filter((m) => m !== 'node-000').map((m) => nodes.get(m)!.signSurvivors(truth));
    // Whatever signatures come with it, node-000 sees fewer than t over the set it signed: it reveals nothing.
    expect(() => liedTo.unmask({ ...lie, signatures: [sigLie, ...sigsTruth] })).toThrow('only 1 valid survivors\' signatures over the survivor set this node signed, the threshold is 3');
    expect(liedTo.expecting).toBe('ABORTED');
    // Nor does a member unmask for a set other than the one it signed.
    expect(() => nodes.get('node-001')!.unmask({ ...lie, signatures: [sigLie, ...sigsTruth] })).toThrow('the survivor set differs from the one this node signed');
    // The rest answer the true set. Trying the attack with all the coordinator now holds: shares of
    // the target's self seed, and not one of its mask key (t are needed), so its pairwise masks stay on.
    const revealed = ['node-002', 'node-003', 'node-004', target].flatMap((m) => nodes.get(m)!.unmask({ ...truth, signatures: sigsTruth }));
    expect(revealed.filter((r) => r.owner === target && r.kind === 'mask-key')).toHaveLength(0);
    expect(revealed.filter((r) => r.owner === target && r.kind === 'self-seed').length).toBeGreaterThanOrEqual(3);
  });

  it('the coordinator half checks each survivor\'s signature over the set, and fails a group with fewer than t signers', async () => {
    const s = setup(5, 8, { k: 4, t: 3 });
    const { group: g, nodes } = s;
    await throughMaskedInput(s);
    expect(g.stage).toBe('CONSISTENCY');
    const sig = nodes.get('node-000')!.signSurvivors(g.survivorSet());
    expect(() => g.receiveConsistency('node-001', sig)).toThrow('consistency.node_id: expected "node-001", got "node-000"');
    const other = nodes.get('node-001')!.signSurvivors({ ...g.survivorSet(), survivors: g.survivorSet().survivors.slice(0, 4) });
    expect(() => g.receiveConsistency('node-001', other)).toThrow('consistency.signature: expected node-001\'s identity-key signature over the survivor set, got one that does not verify');
    g.receiveConsistency('node-000', sig);
    expect(() => g.receiveConsistency('node-000', sig)).toThrow(DuplicateMessageError);
    g.receiveConsistency('node-002', nodes.get('node-002')!.signSurvivors(g.survivorSet()));
    // Only two signed before the deadline: the group fails rather than unmask.
    expect(g.closeStage()).toBe(false);
    expect(g.error!.message).toBe('group g0 at CONSISTENCY: expected at least 3 members, got 2');
  });
});
