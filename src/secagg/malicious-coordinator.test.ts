/**
 * A malicious coordinator against honest SecAgg+ members. The test plays the coordinator: it
 * drives real members (SecAggNode, with hotkey bindings) through a group, deviates from the
 * protocol as an attacker would, keeps everything the members send it, and then tries to use
 * it: it rebuilds every secret it holds t shares of, strips every mask it can from every
 * subset of the masked inputs, and compares what comes out with the members' quantized updates.
 * The attacks: (a) a swapped advertised key, (b) different survivor sets for different members,
 * (c) a request for both secrets of one member, (d) a previous round's messages replayed. In
 * each, no single update and no sum other than the protocol's own output can be computed; the
 * same attacker, given what an open federation without hotkeys reveals, isolates every update
 * (so the tries are real).
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { decodeAddress } from '@polkadot/util-crypto';
import { agree, applyMasks, combineShares, generateIdentity, generateBoxKeyPair, open, type Identity, type Mask } from '../crypto/index.js';
import { signerFromSecret, sr25519Ready, verifySr25519 } from '../wire/index.js';
import { Random } from '../util/index.js';
import { SecAggNode, type HotkeyBinding } from './node.js';
import { advertisementMessage, pairwiseSeed, pairwiseSign, type EncryptedShare, type KeyAdvertisement, type SecAggParams, type SurvivorSet, type SurvivorSignature, type UnmaskShare } from './constants.js';
import { quantBitsFor } from './quantize.js';

const P = 16;

/** Five members whose ids are sr25519 hotkeys (every pair neighbours, t = 3), and their updates. */
async function group(roundId: string, opts: { hotkeys?: boolean } = {}) {
  await sr25519Ready();
  const signers = await Promise.all([0, 1, 2, 3, 4].map((i) => signerFromSecret(`//Malicious${i}`)));
  const members = signers.map((s) => s.address).sort();
  const params: SecAggParams = {
    roundId, groupId: 'g0', members, neighbours: 4, threshold: 3, clipRange: 4, quantBits: quantBitsFor(5), vectorLength: P + 1, maxWeight: 100, seed: randomBytes(32),
  };
  const verify = (peer: string, m: Uint8Array, sig: Uint8Array) => {
    try {
      return verifySr25519(m, sig, decodeAddress(peer));
    } catch {
      return false;
    }
  };
  const binding = (m: string): HotkeyBinding => ({ sign: (msg) => signers.find((s) => s.address === m)!.sign(msg), verify });
  const ids = new Map<string, Identity>(members.map((m) => [m, generateIdentity()]));
  const identities = new Map([...ids].map(([m, id]) => [m, id.publicKey as Uint8Array]));
  const nodes = new Map(members.map((m) => [m, new SecAggNode(params, m, ids.get(m)!, opts.hotkeys === false ? undefined : binding(m))]));
  const rng = new Random(roundId);
  const updates = new Map(members.map((m) => [m, { x: Float32Array.from({ length: P }, () => rng.normal(0, 0.5)), n: 1 + rng.int(100) }]));
  return { params, members, ids, identities, nodes, updates };
}
type Group = Awaited<ReturnType<typeof group>>;

/** All the coordinator holds: advertisements, sealed shares, masked inputs, unmask shares, and the quantized updates (the truth to compare with, never its to see). */
interface Haul {
  params: SecAggParams;
  ads: Map<string, KeyAdvertisement>;
  sharing: Map<string, string[]>;
  masked: Map<string, Uint32Array>;
  revealed: UnmaskShare[];
  quantized: Map<string, Uint32Array>;
}

/** Honest stages up to the masked inputs (the coordinator relays faithfully until then). */
async function throughMaskedInput(g: Group, ads?: KeyAdvertisement[]): Promise<Haul> {
  const sent = ads ?? g.members.map((m) => g.nodes.get(m)!.advertise());
  const shares: EncryptedShare[] = [];
  for (const m of g.members) shares.push(...await g.nodes.get(m)!.shareKeys(sent, g.identities));
  const haul: Haul = { params: g.params, ads: new Map(sent.map((a) => [a.nodeId, a])), sharing: new Map(), masked: new Map(), revealed: [], quantized: new Map() };
  for (const m of g.members) {
    const n = g.nodes.get(m)!;
    n.receiveShares(shares.filter((s) => s.to === m));
    haul.sharing.set(m, n.sharingNeighbours);
    const u = g.updates.get(m)!;
    haul.masked.set(m, n.maskInput(u.x, u.n, { onQuantized: (q) => haul.quantized.set(m, q) }));
  }
  return haul;
}

/** Each member's signature over the set it is told; then an unmask request to each, with the signatures given; refusals are kept. */
function unmaskRound(g: Group, haul: Haul, told: (m: string) => SurvivorSet, signatures?: (sigs: SurvivorSignature[]) => SurvivorSignature[]): Map<string, string> {
  const sigs = g.members.map((m) => g.nodes.get(m)!.signSurvivors(told(m)));
  const refused = new Map<string, string>();
  for (const m of g.members) {
    try {
      haul.revealed.push(...g.nodes.get(m)!.unmask({ ...told(m), signatures: signatures ? signatures(sigs) : sigs }));
    } catch (err) {
      refused.set(m, (err as Error).message);
    }
  }
  return refused;
}

/** The secrets the coordinator can rebuild: those it holds t shares of. */
async function secretsOf(haul: Haul): Promise<{ seeds: Map<string, Uint8Array>; maskKeys: Map<string, Uint8Array> }> {
  const seeds = new Map<string, Uint8Array>(), maskKeys = new Map<string, Uint8Array>();
  for (const owner of haul.params.members) {
    for (const [kind, into] of [['self-seed', seeds], ['mask-key', maskKeys]] as const) {
      const shares = haul.revealed.filter((r) => r.owner === owner && r.kind === kind).map((r) => r.share);
      if (shares.length >= haul.params.threshold) into.set(owner, await combineShares(shares));
    }
  }
  return { seeds, maskKeys };
}

/**
 * Tries every nonempty subset of the members: when the coordinator can strip all the masks on
 * the subset's sum (every member's self mask, every pairwise mask that crosses the subset's
 * edge), it does, and compares with the sum of the quantized updates. Returns the subsets whose
 * sum came out right.
 */
async function isolate(haul: Haul, extra?: { seeds: Map<string, Uint8Array>; maskKeys: Map<string, Uint8Array> }): Promise<string[][]> {
  const own = await secretsOf(haul);
  const seeds = new Map([...own.seeds, ...(extra?.seeds ?? [])]);
  const maskKeys = new Map([...own.maskKeys, ...(extra?.maskKeys ?? [])]);
  const members = haul.params.members.filter((m) => haul.masked.has(m));
  const found: string[][] = [];
  for (let bits = 1; bits < 1 << members.length; bits++) {
    const subset = members.filter((_, i) => bits & (1 << i));
    const inside = new Set(subset);
    const masks: Mask[] = [];
    let possible = true;
    for (const i of subset) {
      const seed = seeds.get(i);
      if (!seed) { possible = false; break; }
      masks.push({ seed, sign: -1 });
      for (const j of haul.sharing.get(i) ?? []) {
        if (inside.has(j)) continue;
        // The pairwise mask of i and j needs either one's mask secret key and the other's public key.
        const ski = maskKeys.get(i), skj = maskKeys.get(j);
        const shared = ski ? agree(ski, haul.ads.get(j)!.maskKey) : skj ? agree(skj, haul.ads.get(i)!.maskKey) : null;
        if (!shared) { possible = false; break; }
        masks.push({ seed: pairwiseSeed(haul.params, shared), sign: pairwiseSign(i, j) === 1 ? -1 : 1 });
      }
      if (!possible) break;
    }
    if (!possible) continue;
    const y = new Uint32Array(haul.params.vectorLength);
    const q = new Uint32Array(haul.params.vectorLength);
    for (const m of subset) {
      const ym = haul.masked.get(m)!, qm = haul.quantized.get(m)!;
      for (let k = 0; k < y.length; k++) {
        y[k] = (y[k]! + ym[k]!) >>> 0;
        q[k] = (q[k]! + qm[k]!) >>> 0;
      }
    }
    applyMasks(y, masks);
    if (y.every((v, k) => v === q[k])) found.push(subset);
  }
  return found;
}

const everyone = (g: Group): SurvivorSet => ({ survivors: [...g.members], dropped: [] });

describe('a malicious coordinator against honest SecAgg+ members (the coordinator tries what it holds)', () => {
  it('honest run: the only sum it can compute is the whole group\'s, as the protocol intends', async () => {
    const g = await group('job/1/1');
    const haul = await throughMaskedInput(g);
    expect(unmaskRound(g, haul, () => everyone(g)).size).toBe(0);
    expect(await isolate(haul)).toEqual([g.members]);
  });

  it('(a) swapping a member\'s advertised keys: every neighbour refuses before sharing; with no hotkeys the swap isolates every update', async () => {
    const g = await group('job/1/2');
    const ads = g.members.map((m) => g.nodes.get(m)!.advertise());
    const victim = g.members[1]!;
    // The coordinator's own keys for the victim, signed by an identity key it relays as the victim's.
    const evilBox = generateBoxKeyPair();
    const evilId = generateIdentity();
    const body = { nodeId: victim, encKey: Buffer.from(evilBox.publicKey), maskKey: ads[1]!.maskKey };
    const forged: KeyAdvertisement = { ...body, identityKey: evilId.publicKey, signature: evilId.sign(advertisementMessage(g.params, body)), hotkeySignature: ads[1]!.hotkeySignature };
    const relayed = new Map(g.identities).set(victim, evilId.publicKey);
    const swapped = ads.map((a) => (a.nodeId === victim ? forged : a));
    // Every neighbour of the victim refuses before it seals a share: the coordinator holds none to open.
    for (const m of g.members.filter((x) => x !== victim)) {
      await expect(g.nodes.get(m)!.shareKeys(swapped, relayed)).rejects.toThrow(/its hotkey signature does not verify/);
      expect(g.nodes.get(m)!.expecting).toBe('ABORTED');
    }

    // The same swap in an open federation (no hotkeys), of t members: the two honest members take
    // it and seal t shares of each secret to the coordinator's keys, which it opens.
    const o = await group('job/1/2-open', { hotkeys: false });
    const fakes = o.members.slice(1, 4), honest = [o.members[0]!, o.members[4]!];
    const oAds = o.members.map((m) => o.nodes.get(m)!.advertise());
    const boxes = new Map(fakes.map((f) => [f, generateBoxKeyPair()]));
    const oRelayed = new Map(o.identities);
    const oSwapped = oAds.map((a) => {
      if (!fakes.includes(a.nodeId)) return a;
      const b = { nodeId: a.nodeId, encKey: Buffer.from(boxes.get(a.nodeId)!.publicKey), maskKey: a.maskKey };
      oRelayed.set(a.nodeId, evilId.publicKey);
      return { ...b, identityKey: evilId.publicKey, signature: evilId.sign(advertisementMessage(o.params, b)), hotkeySignature: Buffer.alloc(0) };
    });
    const shares: EncryptedShare[] = [];
    for (const m of honest) shares.push(...await o.nodes.get(m)!.shareKeys(oSwapped, oRelayed));
    const haul: Haul = { params: o.params, ads: new Map(oSwapped.map((a) => [a.nodeId, a])), sharing: new Map(), masked: new Map(), revealed: [], quantized: new Map() };
    for (const s of shares.filter((x) => fakes.includes(x.to))) {
      const plain = open(s.ciphertext, oAds.find((a) => a.nodeId === s.from)!.encKey, boxes.get(s.to)!.secretKey);
      expect(plain).not.toBeNull();
      // The share plaintext: a length, a JSON tag, the mask-key share, the seed share, then the dealer's signatures.
      const b = Buffer.from(plain!);
      const n = b.readUInt32LE(0);
      const [keyLen, seedLen] = (JSON.parse(b.toString('utf8', 4, 4 + n)) as number[]).slice(5) as [number, number];
      haul.revealed.push({ owner: s.from, kind: 'mask-key', share: b.subarray(4 + n, 4 + n + keyLen) }, { owner: s.from, kind: 'self-seed', share: b.subarray(4 + n + keyLen, 4 + n + keyLen + seedLen) });
    }
    for (const m of honest) {
      const node = o.nodes.get(m)!;
      node.receiveShares(shares.filter((s) => s.to === m));
      haul.sharing.set(m, node.sharingNeighbours);
      const u = o.updates.get(m)!;
      haul.masked.set(m, node.maskInput(u.x, u.n, { onQuantized: (q) => haul.quantized.set(m, q) }));
    }
    // Both honest members' updates, each alone.
    const leaked = await isolate(haul);
    expect(leaked).toEqual(expect.arrayContaining([[honest[0]], [honest[1]]]));
  });

  it('(b) different survivor sets for different members: the member lied to reveals nothing, and no update comes out', async () => {
    const g = await group('job/1/3');
    const haul = await throughMaskedInput(g);
    const target = g.members[4]!, liedTo = g.members[0]!;
    const lie = { survivors: g.members.filter((m) => m !== target), dropped: [target] };
    const refused = unmaskRound(g, haul, (m) => (m === liedTo ? lie : everyone(g)));
    expect(refused.get(liedTo)).toMatch(/only 1 valid survivors' signatures over the survivor set this node signed/);
    expect(await isolate(haul)).toEqual([g.members]);
  });

  it('(c) asking for both secrets of one member: once answered, a member answers nothing more, and no request gets both', async () => {
    const g = await group('job/1/4');
    const haul = await throughMaskedInput(g);
    const target = g.members[2]!;
    const truth = everyone(g);
    const sigs = g.members.map((m) => g.nodes.get(m)!.signSurvivors(truth));
    // First the self-seed shares (the target "survived")...
    for (const m of g.members) haul.revealed.push(...g.nodes.get(m)!.unmask({ ...truth, signatures: sigs }));
    // ...then the mask-key shares (the target "dropped"), with every signature the coordinator holds.
    const claim = { survivors: g.members.filter((m) => m !== target), dropped: [target] };
    for (const m of g.members.filter((x) => x !== target)) {
      expect(() => g.nodes.get(m)!.unmask({ ...claim, signatures: sigs })).toThrow(/expected stage DONE, got UNMASK$/);
    }
    expect(haul.revealed.filter((r) => r.owner === target && r.kind === 'mask-key')).toHaveLength(0);
    expect(await isolate(haul)).toEqual([g.members]);
  });

  it('(d) replaying a previous round\'s messages: members refuse them, and last round\'s secrets strip nothing from this round', async () => {
    const past = await group('job/1/5');
    const pastHaul = await throughMaskedInput(past);
    unmaskRound(past, pastHaul, () => everyone(past));
    // Every secret of the past round, in full (more than a coordinator ever gets).
    const pastSecrets = await secretsOf(pastHaul);
    expect(pastSecrets.seeds.size).toBe(5);
    const now = await group('job/1/6');
    // Past advertisements into this round: signed for another round, refused.
    const nowAds = now.members.map((m) => now.nodes.get(m)!.advertise());
    const replayed = nowAds.map((a) => (a.nodeId === now.members[3] ? [...pastHaul.ads.values()].find((p) => p.nodeId === a.nodeId)! : a));
    const fresh = new SecAggNode(now.params, now.members[0]!, now.ids.get(now.members[0]!)!, {
      sign: () => new Uint8Array(64),
      verify: (peer, m, sig) => verifySr25519(m, sig, decodeAddress(peer)),
    });
    fresh.advertise();
    await expect(fresh.shareKeys(replayed, now.identities)).rejects.toThrow(/does not verify/);
    // This round runs honestly; a past unmask request (its set, its signatures) is refused.
    const haul = await throughMaskedInput(now, nowAds);
    const pastSigs = past.members.map((m) => ({ nodeId: m, signature: Buffer.alloc(64), hotkeySignature: Buffer.alloc(64) }));
    const victim = now.nodes.get(now.members[1]!)!;
    victim.signSurvivors(everyone(now));
    expect(() => victim.unmask({ ...everyone(now), signatures: pastSigs })).toThrow(/only 0 valid survivors' signatures/);
    // The coordinator tries this round's masked inputs with last round's secrets: nothing.
    expect(await isolate(haul, pastSecrets)).toEqual([]);
  });
});
