import { describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SecureAggregation } from './secure-aggregation.js';
import { SumStorage } from './group-sum.js';
import { SecAggNode } from './node.js';
import { generateIdentity } from '../crypto/index.js';
import { quantBitsFor } from './quantize.js';
import type { SecAggParams } from './constants.js';

function params(groupId: string, members: string[], P: number): SecAggParams {
  return {
    roundId: 'j/1/1', groupId, members, neighbours: members.length - 1, threshold: 2, clipRange: 4,
    quantBits: quantBitsFor(members.length), vectorLength: P + 1, maxWeight: 10, seed: randomBytes(32),
  };
}

describe('SecureAggregation', () => {
  it.each([
    ['in shared memory', 1 << 20],
    ['in files (no memory allowed for them)', 0],
  ])('drops a group that falls below its threshold and finishes the others, its sums %s', async (_where, memoryBytes) => {
    const P = 32;
    const groups = [params('g0', ['a', 'b', 'c'], P), params('g1', ['d', 'e', 'f'], P)];
    const ids = new Map([...'abcdef'].map((m) => [m, generateIdentity()]));
    const identities = new Map([...ids].map(([m, id]) => [m, id.publicKey as Uint8Array]));
    const lost: string[] = [];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aq-sums-'));
    const storage = new SumStorage(path.join(dir, 'sums'), memoryBytes);
    const sa = new SecureAggregation({ groups, identities, stageTimeoutMs: 10_000, unmaskTimeoutMs: 10_000, onMembersLost: (l) => lost.push(...l), storage });
    expect(sa.sumsInMemory).toBe(memoryBytes > 0);
    expect(fs.readdirSync(storage.dir)).toHaveLength(memoryBytes > 0 ? 0 : 2);
    expect(storage.heldBytes).toBe(memoryBytes > 0 ? 2 * (P + 1) * 4 : 0);
    const nodes = new Map(groups.flatMap((g) => g.members.map((m) => [m, new SecAggNode(g, m, ids.get(m)!)] as const)));
    const ac = new AbortController();
    // A long poll started before the stage closes is woken by it.
    const waiting = sa.awaitInput('a', 'SHARE_KEYS', 10_000, ac.signal);
    // In g1 only d advertises; e and f never do.
    for (const m of ['a', 'b', 'c', 'd']) sa.submitAdvertisement(m, nodes.get(m)!.advertise());
    expect((await waiting)?.kind).toBe('advertisements');
    expect(sa.inputFor('d', 'SHARE_KEYS')).toBeNull();
    // e and f leave (lost heartbeats): g1 is left with one member, fails, and all its members are reported lost.
    sa.drop('e');
    sa.drop('f');
    expect(sa.groupOf('d').stage).toBe('FAILED');
    expect(lost.sort()).toEqual(['d', 'e', 'f']);
    expect(sa.inputFor('d', 'SHARE_KEYS')).toEqual({ kind: 'aborted', reason: 'group g1 at ADVERTISE_KEYS: expected at least 2 members, got 1' });
    for (const m of ['a', 'b', 'c']) {
      const r = sa.inputFor(m, 'SHARE_KEYS');
      if (r?.kind !== 'advertisements') throw new Error('expected advertisements');
      sa.submitShares(m, await nodes.get(m)!.shareKeys(r.advertisements, identities));
    }
    for (const m of ['a', 'b', 'c']) {
      const r = sa.inputFor(m, 'MASKED_INPUT');
      if (r?.kind !== 'shares') throw new Error('expected shares');
      nodes.get(m)!.receiveShares(r.shares);
      sa.checkMaskedInput(m);
      sa.submitMaskedInput(m, nodes.get(m)!.maskInput(new Float32Array(P).fill(0.5), 10));
    }
    expect(sa.groupOf('a').stage).toBe('CONSISTENCY');
    for (const m of ['a', 'b', 'c']) {
      const r = sa.inputFor(m, 'CONSISTENCY');
      if (r?.kind !== 'survivors') throw new Error('expected the survivor set');
      sa.submitConsistency(m, nodes.get(m)!.signSurvivors(r.set));
    }
    expect(sa.groupOf('a').stage).toBe('UNMASK');
    for (const m of ['a', 'b', 'c']) {
      const r = sa.inputFor(m, 'UNMASK');
      if (r?.kind !== 'unmask') throw new Error('expected an unmask request');
      sa.submitUnmask(m, nodes.get(m)!.unmask(r.request));
    }
    await sa.unmasked();
    const { results, failed } = await sa.finish();
    expect(failed.map((f) => f.groupId)).toEqual(['g1']);
    expect(results).toHaveLength(1);
    expect(results[0]!.members).toEqual(['a', 'b', 'c']);
    expect(results[0]!.totalWeight).toBeCloseTo(30, 4);
    expect(results[0]!.weightedSum[0]).toBeCloseTo(15, 4);
    // Closed: nothing of the sums is left, in memory or on disk (files removed in the background).
    await vi.waitFor(() => expect(fs.readdirSync(storage.dir)).toEqual([]));
    expect(storage.heldBytes).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gives each group as soon as it settles, while another still collects masked inputs', async () => {
    const P = 8;
    const groups = [params('g0', ['a', 'b', 'c'], P), params('g1', ['d', 'e', 'f'], P)];
    const ids = new Map([...'abcdef'].map((m) => [m, generateIdentity()]));
    const identities = new Map([...ids].map(([m, id]) => [m, id.publicKey as Uint8Array]));
    const sa = new SecureAggregation({ groups, identities, stageTimeoutMs: 10_000, unmaskTimeoutMs: 10_000 });
    const nodes = new Map(groups.flatMap((g) => g.members.map((m) => [m, new SecAggNode(g, m, ids.get(m)!)] as const)));
    for (const m of 'abcdef') sa.submitAdvertisement(m, nodes.get(m)!.advertise());
    for (const m of 'abcdef') {
      const r = sa.inputFor(m, 'SHARE_KEYS');
      if (r?.kind !== 'advertisements') throw new Error('expected advertisements');
      sa.submitShares(m, await nodes.get(m)!.shareKeys(r.advertisements, identities));
    }
    for (const m of 'abcdef') {
      const r = sa.inputFor(m, 'MASKED_INPUT');
      if (r?.kind !== 'shares') throw new Error('expected shares');
      nodes.get(m)!.receiveShares(r.shares);
    }
    // g0 goes all the way; g1's members hold their masked inputs back.
    for (const m of 'abc') sa.submitMaskedInput(m, nodes.get(m)!.maskInput(new Float32Array(P).fill(0.25), 4));
    for (const m of 'abc') {
      const r = sa.inputFor(m, 'CONSISTENCY');
      if (r?.kind !== 'survivors') throw new Error('expected the survivor set');
      sa.submitConsistency(m, nodes.get(m)!.signSurvivors(r.set));
    }
    for (const m of 'abc') {
      const r = sa.inputFor(m, 'UNMASK');
      if (r?.kind !== 'unmask') throw new Error('expected an unmask request');
      sa.submitUnmask(m, nodes.get(m)!.unmask(r.request));
    }
    const settled = sa.settledGroups();
    const first = await settled.next();
    expect(first.value?.groupId).toBe('g0');
    expect(sa.groupOf('d').stage).toBe('MASKED_INPUT');
    const r0 = await sa.finishGroup(first.value);
    if (!('result' in r0)) throw new Error(r0.failed.reason);
    expect(r0.result.weightedSum[0]).toBeCloseTo(3 * 4 * 0.25, 4);
    // g1 settles once its inputs stop coming (TRAIN over): it is given next, failed.
    sa.closeInputs();
    const second = await settled.next();
    expect(second.value?.groupId).toBe('g1');
    const r1 = await sa.finishGroup(second.value);
    expect('failed' in r1 && r1.failed.reason).toBe('group g1 at MASKED_INPUT: expected at least 2 members, got 0');
    expect((await settled.next()).done).toBe(true);
    sa.close();
  });

  it("wakes a member's long poll for its own group's changes only", async () => {
    const groups = [params('g0', ['a', 'b', 'c'], 8), params('g1', ['d', 'e', 'f'], 8)];
    const ids = new Map([...'abcdef'].map((m) => [m, generateIdentity()]));
    const identities = new Map([...ids].map(([m, id]) => [m, id.publicKey as Uint8Array]));
    const sa = new SecureAggregation({ groups, identities, stageTimeoutMs: 10_000, unmaskTimeoutMs: 10_000 });
    const nodes = new Map(groups.flatMap((g) => g.members.map((m) => [m, new SecAggNode(g, m, ids.get(m)!)] as const)));
    const looks = vi.spyOn(sa, 'inputFor');
    const looksFor = (m: string) => looks.mock.calls.filter(([nodeId]) => nodeId === m).length;
    const ac = new AbortController();
    const waiting = sa.awaitInput('a', 'SHARE_KEYS', 10_000, ac.signal);
    expect(looksFor('a')).toBe(1);
    // g1 advertises and moves to SHARE_KEYS: a's long poll does not look again.
    for (const m of 'def') sa.submitAdvertisement(m, nodes.get(m)!.advertise());
    expect(sa.groupOf('d').stage).toBe('SHARE_KEYS');
    await new Promise((r) => setImmediate(r));
    expect(looksFor('a')).toBe(1);
    // Its own group's stage closing wakes it, with the advertisements.
    for (const m of 'abc') sa.submitAdvertisement(m, nodes.get(m)!.advertise());
    expect((await waiting)?.kind).toBe('advertisements');
    sa.close();
  });

  it('closes a stage at its deadline without the members that did not answer, and names them', async () => {
    const groups = [params('g0', ['a', 'b', 'c', 'd'], 4)];
    const ids = new Map([...'abcd'].map((m) => [m, generateIdentity()]));
    const identities = new Map([...ids].map(([m, id]) => [m, id.publicKey as Uint8Array]));
    const lost: string[] = [];
    const timedOut: [string, string, string[]][] = [];
    const sa = new SecureAggregation({
      groups, identities, stageTimeoutMs: 50, unmaskTimeoutMs: 50, onMembersLost: (l) => lost.push(...l),
      onStageTimeout: (g, stage, waiting) => timedOut.push([g, stage, waiting]),
    });
    const nodes = new Map([...'abc'].map((m) => [m, new SecAggNode(groups[0]!, m, ids.get(m)!)]));
    for (const [m, n] of nodes) sa.submitAdvertisement(m, n.advertise());
    await until(() => sa.groupOf('a').stage === 'SHARE_KEYS');
    expect(lost).toEqual(['d']);
    expect(sa.canStart('d')).toBe(false);
    expect(timedOut).toEqual([['g0', 'ADVERTISE_KEYS', ['d']]]);
    for (const [m, n] of nodes) {
      const r = sa.inputFor(m, 'SHARE_KEYS');
      if (r?.kind !== 'advertisements') throw new Error('expected advertisements');
      sa.submitShares(m, await n.shareKeys(r.advertisements, identities));
    }
    for (const [m, n] of nodes) {
      const r = sa.inputFor(m, 'MASKED_INPUT');
      if (r?.kind !== 'shares') throw new Error('expected shares');
      n.receiveShares(r.shares);
      sa.submitMaskedInput(m, n.maskInput(new Float32Array(4).fill(0.5), 10));
    }
    // c sent its input, then goes quiet: CONSISTENCY waits for it until its deadline, and says so.
    for (const m of ['a', 'b']) {
      const r = sa.inputFor(m, 'CONSISTENCY');
      if (r?.kind !== 'survivors') throw new Error('expected the survivor set');
      sa.submitConsistency(m, nodes.get(m)!.signSurvivors(r.set));
    }
    expect(sa.groupOf('a').stage).toBe('CONSISTENCY');
    await until(() => sa.groupOf('a').stage !== 'CONSISTENCY');
    expect(timedOut.slice(1)).toEqual([['g0', 'CONSISTENCY', ['c']]]);
    sa.close();
  });
});

async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
