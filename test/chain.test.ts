/**
 * Weights on the real subtensor runtime (spec 293 under chopsticks): a subnet with this
 * coordinator's hotkey as validator and two miners; the metagraph as read, the weights as set
 * equal to the Weights storage, Incentive ordered as the scores, and each rule error's message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyringPair } from '@polkadot/keyring/types';
import { chainAvailable, startLocalChain, type LocalChain } from './chain-helpers.js';
import { ChainRuleError, PendingCommitStore, commitWeights, publishWeights, readMetagraph, revealPending, loadSigner } from '../src/chain/index.js';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { toU16Weights } from '../src/scoring/index.js';
import { Harness, grpcError } from './helpers.js';
import { status } from '@grpc/grpc-js';
import { callUnary, makeClient, CoordinatorClient } from '../src/wire/index.js';

const run = chainAvailable() ? describe : describe.skip;

run('subtensor weights', () => {
  let chain: LocalChain;
  let netuid: number;
  let validator: KeyringPair;
  let miners: KeyringPair[];

  beforeAll(async () => {
    chain = await startLocalChain();
    const { api, keyring, alice } = chain;
    const tx = api.tx;
    validator = keyring.addFromUri('//ActiquestValidator');
    miners = [keyring.addFromUri('//TrainerA'), keyring.addFromUri('//TrainerB')];
    await chain.sudo(tx.adminUtils!.sudoSetNetworkRateLimit!(0), 'network rate limit');
    await chain.sender(alice).send(tx.subtensorModule!.registerNetwork!(validator.address), 'register_network');
    netuid = Number((await api.query.subtensorModule!.totalNetworks!()).toString()) - 1;
    await chain.blocks(11);
    await chain.sender(alice).send(tx.subtensorModule!.startCall!(netuid), 'start_call');
    for (const m of miners) await chain.sender(alice).send(tx.subtensorModule!.burnedRegister!(netuid, m.address), 'burned_register');
    for (const k of [validator, ...miners]) await chain.sender(alice).send(tx.balances.transferKeepAlive(k.address, 10_000_000_000n), 'fund');
    await chain.sudo(tx.adminUtils!.sudoSetWeightsSetRateLimit!(netuid, 0), 'rate limit');
    await chain.sudo(tx.adminUtils!.sudoSetCommitRevealWeightsEnabled!(netuid, false), 'commit-reveal off');
    await chain.sudo(tx.adminUtils!.sudoSetTempo!(netuid, 5), 'tempo');
    // One validator slot: only the staked hotkey keeps a permit when epochs recompute them.
    await chain.sudo(tx.adminUtils!.sudoSetMaxAllowedValidators!(netuid, 1), 'max validators');
    await chain.sender(alice).send(tx.subtensorModule!.addStake!(validator.address, netuid, 100_000_000_000n), 'add_stake');
    await chain.blocks(12);
    // Setting up a subnet on the runtime takes about a minute alone and twice that beside the
    // CPU-heavy suites on a 2-core machine.
  }, 300_000);

  afterAll(async () => chain?.close());

  /** A plaintext job of `rounds` whose trainers are the two miners, with the coordinator on the chain. */
  async function runOnChain(h: Harness, rounds: number) {
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', String(rounds), '--cohort', '2', '--min-trainers', '2', '--hidden', '8',
      '--local-epochs', '1', '--validation-samples', '70', '--exit-when-done',
      '--chain', chain.url, '--netuid', String(netuid), '--hotkey-uri', '//ActiquestValidator']);
    await h.dataset(c.address, 'ds-a');
    // On a chain, a trainer's node id is its hotkey.
    for (const m of miners) await h.trainer(c.address, m.address);
    expect(await c.done).toBe('DONE');
    return c;
  }

  it('reads the metagraph: hotkeys, the validator permit, the weight rules', async () => {
    const mg = await readMetagraph(chain.api, netuid);
    expect(mg.neurons.map((n) => n.hotkey)).toEqual([validator.address, ...miners.map((m) => m.address)]);
    expect(mg.neurons.map((n) => n.validatorPermit)).toEqual([true, false, false]);
    expect(mg.hyperparams).toMatchObject({ tempo: 5, weightsSetRateLimit: 0, commitRevealEnabled: false });
    await expect(readMetagraph(chain.api, 999)).rejects.toThrow('subnet 999: not found on this chain');
  });

  it('sets the weights the scores give, the Weights storage equals them, and Incentive follows the scores', async () => {
    const mg = await readMetagraph(chain.api, netuid);
    const weights = toU16Weights(new Map([[1, 0.8], [2, 0.2]]), { maxWeightsLimit: mg.hyperparams.maxWeightsLimit, minAllowedWeights: mg.hyperparams.minAllowedWeights });
    expect(weights).toEqual({ uids: [1, 2], values: [65535, 16384] });
    await publishWeights(chain.api, chain.sender(validator), mg, weights, { netuid, versionKey: mg.hyperparams.weightsVersionKey });
    const stored = (await chain.api.query.subtensorModule!.weights!(netuid, 0)).toJSON() as [number, number][];
    expect(stored).toEqual([[1, 65535], [2, 16384]]);
    await chain.blocks(12);
    const incentive = (await chain.api.query.subtensorModule!.incentive!(netuid)).toJSON() as number[];
    expect(incentive[1]!).toBeGreaterThan(incentive[2]!);
    expect(incentive[2]!).toBeGreaterThan(0);
  });

  it('a coordinator with --chain sets the weights its scores give, and the Weights storage holds them', async () => {
    const h = new Harness();
    try {
      const c = await runOnChain(h, 1);
      const pub = c.lastPublication();
      expect(pub).not.toBeNull();
      expect(pub!.uids).toEqual([1, 2]);
      // ds-a is scored too but has no uid on this subnet.
      expect(pub!.unmapped).toEqual(['ds-a']);
      const stored = (await chain.api.query.subtensorModule!.weights!(netuid, 0)).toJSON() as [number, number][];
      expect(stored).toEqual(pub!.uids.map((u, i) => [u, pub!.values[i]]));
      expect(h.progress.some((l) => new RegExp(`^weights set on subnet ${netuid} at block \\d+: 2 uids`).test(l))).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('explains each rule error: no permit, version key, rate limit, commit-reveal', async () => {
    const { api } = chain;
    const mg = await readMetagraph(api, netuid);
    const w = { uids: [1, 2], values: [65535, 100] };
    expect(mg.neurons[1]!.validatorPermit).toBe(false);
    const noPermit = publishWeights(api, chain.sender(miners[0]!), mg, { uids: [0, 2], values: [65535, 1] }, { netuid, versionKey: 0 });
    await expect(noPermit).rejects.toThrow(ChainRuleError);
    await expect(noPermit).rejects.toThrow('set_weights refused by the chain (NeuronNoValidatorPermit): this hotkey has no validator permit on the subnet');

    await chain.sudo(api.tx.adminUtils!.sudoSetWeightsVersionKey!(netuid, 7), 'version key');
    await expect(publishWeights(api, chain.sender(validator), mg, w, { netuid, versionKey: 3 }))
      .rejects.toThrow("set_weights refused by the chain (IncorrectWeightVersionKey): the version key is below the subnet's WeightsVersionKey");
    await publishWeights(api, chain.sender(validator), mg, w, { netuid, versionKey: 7 });

    await chain.sudo(api.tx.adminUtils!.sudoSetWeightsSetRateLimit!(netuid, 1000), 'rate limit 1000');
    await expect(publishWeights(api, chain.sender(validator), mg, w, { netuid, versionKey: 7 }))
      .rejects.toThrow('set_weights refused by the chain (SettingWeightsTooFast): weights were set too recently');

    await chain.sudo(api.tx.adminUtils!.sudoSetCommitRevealWeightsEnabled!(netuid, true), 'commit-reveal on');
    const withCr = await readMetagraph(api, netuid);
    expect(withCr.hyperparams.commitRevealEnabled).toBe(true);
    await expect(publishWeights(api, chain.sender(validator), withCr, w, { netuid, versionKey: 7 }))
      .rejects.toThrow('set_weights refused by the chain (CommitRevealEnabled): commit-reveal is on for this subnet');
  });

  it('commits, refuses an early reveal, and reveals in the reveal epoch from the stored salt (as after a restart)', async () => {
    const { api } = chain;
    await chain.sudo(api.tx.adminUtils!.sudoSetWeightsSetRateLimit!(netuid, 0), 'rate limit 0');
    await chain.sudo(api.tx.adminUtils!.sudoSetCommitRevealWeightsInterval!(netuid, 1), 'reveal period 1');
    const mg = await readMetagraph(api, netuid);
    expect(mg.hyperparams.commitRevealEnabled).toBe(true);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'actiquest-commits-'));
    try {
      const store = new PendingCommitStore(path.join(dir, 'pending-commits.json'));
      const weights = { uids: [1, 2], values: [20000, 65535] };
      const pending = await commitWeights(api, chain.sender(validator), store, netuid, weights, mg.hyperparams.weightsVersionKey);
      expect(pending.hash).toMatch(/^0x[0-9a-f]{64}$/);
      const early = await revealPending(api, chain.sender(validator), store);
      expect(early).toEqual([{ hash: pending.hash, result: 'too-early', reason: expect.stringContaining('(RevealTooEarly): the reveal is too early') }]);
      // A restarted coordinator reads the same file.
      const reopened = new PendingCommitStore(store.file);
      expect(reopened.list().map((c) => c.salt)).toEqual([pending.salt]);
      let outcome = early;
      // An epoch is tempo + 1 = 6 blocks and the reveal window one epoch: step a block at a time.
      for (let i = 0; i < 20 && outcome[0]?.result === 'too-early'; i++) {
        await chain.blocks(1);
        outcome = await revealPending(api, chain.sender(validator), reopened);
      }
      expect(outcome).toEqual([{ hash: pending.hash, result: 'revealed' }]);
      expect(reopened.list()).toEqual([]);
      const stored = (await api.query.subtensorModule!.weights!(netuid, 0)).toJSON() as [number, number][];
      expect(stored).toEqual([[1, 20000], [2, 65535]]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // Ten rounds wait on the runtime's blocks: 60 s alone, over 120 s beside the CPU-heavy suites.
  it('a coordinator on a commit-reveal subnet commits each round and reveals in a later one', async () => {
    const h = new Harness();
    try {
      const c = await runOnChain(h, 10);
      const pubs = c.publications();
      expect(pubs.length).toBeGreaterThan(0);
      expect(pubs.every((p) => p.mode === 'commit')).toBe(true);
      expect(pubs.reduce((n, p) => n + p.revealed, 0)).toBeGreaterThan(0);
      expect(h.progress.some((l) => /^weights committed on subnet \d+ at block \d+: 2 uids.*; \d+ earlier commit\(s\) revealed/.test(l))).toBe(true);
      // What stands on chain is one of the committed weight sets.
      const stored = (await chain.api.query.subtensorModule!.weights!(netuid, 0)).toJSON() as [number, number][];
      expect(pubs.some((p) => JSON.stringify(p.uids.map((u, i) => [u, p.values[i]])) === JSON.stringify(stored))).toBe(true);
    } finally {
      await h.close();
    }
  }, 300_000);
  it('admits signed trainers by the metagraph and a dataset node by the allowlist, and refuses a hotkey in neither', async () => {
    const h = new Harness();
    try {
      const allow = path.join(h.dir, 'allowlist');
      fs.writeFileSync(allow, `${chain.keyring.addFromUri('//DatasetA').address} dataset\n`);
      const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '1', '--cohort', '2', '--min-trainers', '2', '--hidden', '8',
        '--local-epochs', '1', '--validation-samples', '70', '--auth', 'signed', '--allowlist', allow,
        '--chain', chain.url, '--netuid', String(netuid), '--hotkey-uri', '//ActiquestValidator']);
      await h.dataset(c.address, 'ds-a', ['--hotkey-uri', '//DatasetA', '--auth', 'signed']);
      for (const m of ['TrainerA', 'TrainerB']) await h.trainer(c.address, '', ['--hotkey-uri', `//${m}`]);
      expect(await c.done).toBe('DONE');
      expect([...c.job.history[0]!.reporters].sort()).toEqual(miners.map((m) => m.address).sort());
      const stranger = await loadSigner({ uri: '//Stranger' });
      const client = makeClient(CoordinatorClient, c.address, undefined, stranger);
      try {
        const err = await grpcError(callUnary(client, 'RegisterTrainer', { nodeId: stranger.address, capacity: { samplesPerSecond: 1 } }, { timeoutMs: 10_000 }));
        expect(err.code).toBe(status.PERMISSION_DENIED);
        expect(err.details).toMatch(new RegExp(`^hotkey ${stranger.address}: not admitted as a trainer \\(not in the allowlist .*; not registered on subnet ${netuid} \\(metagraph at block \\d+\\)\\)$`));
      } finally {
        client.close();
      }
    } finally {
      await h.close();
    }
  }, 300_000);
});
