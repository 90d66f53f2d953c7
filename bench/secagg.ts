/**
 * SecAgg+ benchmark: the coordinator's unmasking of one group of n = 100 at P = 10M, and one
 * node's masking, against floors measured in the same run:
 *
 *   floor = expanding the same number of masks with the same cipher (AES-128-CTR, node:crypto)
 *           and adding each into a vector with a plain loop, one mask after another, one thread.
 *   also printed: the cipher alone (keystream, nothing added).
 *
 * The floors are timed on a sample of masks and scaled to the count; the protocol runs for real
 * (keys, Shamir shares, boxes, reconstruction, key agreements). The members' masked inputs are
 * zeros: unmasking costs the same whatever they hold, and building 100 real 40 MB inputs would
 * dominate the run (correctness is the tests' job, src/secagg/secagg.test.ts).
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { generateIdentity, applyMasks } from '../src/crypto/index.js';
import { SecAggGroup, SecAggNode, MaskPool, type SecAggParams, quantBitsFor } from '../src/secagg/index.js';
import { Random } from '../src/util/index.js';

const fmt = (x: number, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const ZEROS = Buffer.alloc(64 << 10);

/** Milliseconds per mask of the floors, over `sample` masks of `words` words. */
function floors(words: number, sample: number): { expandAdd: number; expand: number } {
  const target = new Uint32Array(words);
  let t0 = performance.now();
  for (let m = 0; m < sample; m++) {
    const seed = randomBytes(32);
    const c = createCipheriv('aes-128-ctr', seed.subarray(0, 16), seed.subarray(16));
    for (let off = 0; off < words; off += ZEROS.length / 4) {
      const n = Math.min(ZEROS.length / 4, words - off);
      const ks = c.update(ZEROS.subarray(0, n * 4));
      const w = new Uint32Array(ks.buffer, ks.byteOffset, n);
      for (let i = 0; i < n; i++) target[off + i] = target[off + i]! + w[i]!;
    }
  }
  const expandAdd = (performance.now() - t0) / sample;
  t0 = performance.now();
  for (let m = 0; m < sample; m++) {
    const seed = randomBytes(32);
    const c = createCipheriv('aes-128-ctr', seed.subarray(0, 16), seed.subarray(16));
    for (let off = 0; off < words * 4; off += ZEROS.length) c.update(ZEROS.subarray(0, Math.min(ZEROS.length, words * 4 - off)));
  }
  return { expandAdd, expand: (performance.now() - t0) / sample };
}

/** Runs one group to UNMASK (inputs are zeros) and times the coordinator's finish(). */
async function unmaskRun(n: number, P: number, k: number, t: number, dropout: number, pool: MaskPool, draw: number) {
  const members = Array.from({ length: n }, (_, i) => `n${String(i).padStart(3, '0')}`);
  const base = { roundId: 'bench/1/1', groupId: 'g0', members, neighbours: k, threshold: t, clipRange: 8, quantBits: quantBitsFor(n), maxWeight: 100, seed: Buffer.alloc(32, draw) };
  const groupParams: SecAggParams = { ...base, vectorLength: P + 1 };
  // Nodes mask a 1-word vector: their keys, shares and graph are those of the real group.
  const nodeParams: SecAggParams = { ...base, vectorLength: 2 };
  const ids = new Map(members.map((m) => [m, generateIdentity()]));
  const identities = new Map([...ids].map(([m, id]) => [m, id.publicKey as Uint8Array]));
  const nodes = new Map(members.map((m) => [m, new SecAggNode(nodeParams, m, ids.get(m)!)]));
  const group = new SecAggGroup(groupParams, identities);
  const setup = performance.now();
  for (const [m, node] of nodes) group.receiveAdvertisement(m, node.advertise());
  group.closeStage();
  for (const [m, node] of nodes) group.receiveShares(m, await node.shareKeys(group.advertisementsFor(m), identities));
  group.closeStage();
  const dropped = new Set(new Random(`bench-dropouts-${draw}`).shuffle([...members]).slice(0, Math.round(n * dropout)));
  const zeros = new Uint32Array(P + 1);
  for (const [m, node] of nodes) {
    node.receiveShares(group.sharesFor(m));
    node.maskInput(new Float32Array(1), 1);
    if (!dropped.has(m)) group.receiveMaskedInput(m, zeros);
  }
  group.closeStage();
  const req = group.unmaskRequest();
  for (const [m, node] of nodes) if (!dropped.has(m)) group.receiveUnmask(m, node.unmask(req));
  const setupMs = performance.now() - setup;
  const t0 = performance.now();
  await group.finish(pool);
  return { ms: performance.now() - t0, masks: group.masksRemoved, setupMs };
}

export async function benchSecAgg(options: { quick: boolean }): Promise<void> {
  const n = 100, P = 10_000_000;
  const pool = new MaskPool();
  await pool.apply(new Uint32Array(new SharedArrayBuffer(4 << 20)), [{ seed: randomBytes(32), sign: 1 }]); // start the threads
  console.log(`\n== SecAgg+ unmasking at the coordinator: one group of n = ${n}, P = ${fmt(P)}, AES-128-CTR, ${pool.threads} mask threads`);
  const f = floors(P + 1, 6);
  console.log(`  floor per mask, one thread: expand + add ${fmt(f.expandAdd, 1)} ms, expand alone ${fmt(f.expand, 1)} ms`);
  console.log('  graph              dropout  masks   unmask    floor (expand+add)   ratio   vs expand alone');
  const configs: [string, number, number, number][] = [
    // t = 7 of 14: with 30% of members gone a node keeps ~9.8 neighbours (sd ~1.7), so some
    // draws leave one below t; the table says how many. Choose k and t for the dropout you expect.
    ['k = 14, t = 7', 14, 7, 0], ['k = 14, t = 7', 14, 7, 0.1], ['k = 14, t = 7', 14, 7, 0.3],
    ['full, t = 51', n - 1, 51, 0], ['full, t = 51', n - 1, 51, 0.1],
  ];
  if (!options.quick) configs.push(['full, t = 51', n - 1, 51, 0.3]);
  for (const [label, k, t, d] of configs) {
    // Seeded draws of graph and dropouts; a draw that leaves some secret with fewer than t
    // shares fails the group (as it would in a round), and the next draw is timed instead.
    let failedDraws = 0;
    let r: Awaited<ReturnType<typeof unmaskRun>> | null = null;
    for (let draw = 1; !r && draw <= 10; draw++) {
      try {
        r = await unmaskRun(n, P, k, t, d, pool, draw);
      } catch {
        failedDraws++;
      }
    }
    if (!r) {
      console.log(`  ${label.padEnd(17)}  ${`${d * 100}%`.padStart(7)}  every one of 10 draws left a secret below t`);
      continue;
    }
    const floor = r.masks * f.expandAdd;
    const note = failedDraws ? `  (${failedDraws} earlier draw${failedDraws > 1 ? 's' : ''} failed: a node kept < t neighbours)` : '';
    console.log(`  ${label.padEnd(17)}  ${`${d * 100}%`.padStart(7)}  ${String(r.masks).padStart(5)}  ${`${fmt(r.ms / 1000, 2)} s`.padStart(8)}  ${`${fmt(floor / 1000, 2)} s`.padStart(19)}  ${fmt(r.ms / floor, 2).padStart(6)}  ${fmt(r.ms / (r.masks * f.expand), 2).padStart(16)}${note}`);
  }

  console.log(`\n== SecAgg+ masking at one node, P = ${fmt(P)}`);
  const update = Float32Array.from({ length: P }, (_, i) => Math.sin(i) * 0.01);
  for (const [label, k] of [['k = 14', 14], ['full graph, k = 99', n - 1]] as const) {
    const words = new Uint32Array(P + 1);
    const masks = Array.from({ length: k + 1 }, () => ({ seed: randomBytes(32), sign: 1 as const }));
    let t0 = performance.now();
    applyMasks(words, masks);
    const inline = performance.now() - t0;
    const shared = new Uint32Array(new SharedArrayBuffer((P + 1) * 4));
    t0 = performance.now();
    await pool.apply(shared, masks);
    const threaded = performance.now() - t0;
    const floor = (k + 1) * f.expandAdd;
    console.log(`  ${label.padEnd(19)} ${k + 1} masks: ${fmt(threaded)} ms in ${pool.threads} threads (${fmt(inline)} ms in one), floor ${fmt(floor)} ms, ratio ${fmt(threaded / floor, 2)} (one thread ${fmt(inline / floor, 2)})`);
  }
  // Quantization (clip, weight, stochastic rounding) comes before masking.
  const { quantizeWeighted } = await import('../src/secagg/index.js');
  const t0 = performance.now();
  quantizeWeighted(update, 0.5, 8, 29);
  console.log(`  quantizing the update first: ${fmt(performance.now() - t0)} ms`);
  await pool.close();
}
