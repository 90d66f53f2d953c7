/**
 * Weights on the real subtensor runtime (spec 293 under chopsticks): a subnet with this
 * coordinator's hotkey as validator and two miners; the metagraph as read, the weights as set
 * equal to the Weights storage, Incentive ordered as the scores, and each rule error's message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyringPair } from '@polkadot/keyring/types';
import { chainAvailable, chainRelay, startLocalChain, type LocalChain } from './chain-helpers.js';
import { announceAxon, ChainRuleError, PendingCommitStore, commitWeights, publishWeights, readBeacon, readMetagraph, revealDue, loadSigner, testBeacon } from '../src/chain/index.js';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { toU16Weights } from '../src/scoring/index.js';
import { Harness, freePort, grpcError, healthOf } from './helpers.js';
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

  /** A plaintext job of `rounds` whose trainers are the two miners, with the coordinator on the chain, done. */
  async function runOnChain(h: Harness, rounds: number, flags: string[] = []) {
    const c = await startOnChain(h, rounds, flags);
    expect(await c.done).toBe('DONE');
    return c;
  }

  /** Runs `body` with a harness while the chain builds a block every `blockMs`; stops both after. */
  async function onRunningChain(body: (h: Harness) => Promise<void>, blockMs = 300): Promise<void> {
    const h = new Harness();
    const stop = chain.produceBlocks(blockMs);
    try {
      await body(h);
    } finally {
      await stop();
      await h.close();
    }
  }

  /** The same, started: the job runs on. */
  async function startOnChain(h: Harness, rounds: number, flags: string[] = []) {
    const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', String(rounds), '--cohort', '2', '--min-trainers', '2', '--hidden', '8',
      '--local-epochs', '1', '--validation-samples', '70', '--weights-poll-ms', '300', '--block-time', '1',
      '--chain', chain.url, '--netuid', String(netuid), '--hotkey-uri', '//ActiquestValidator', ...flags]);
    await h.dataset(c.address, 'ds-a');
    // On a chain, a trainer's node id is its hotkey.
    for (const m of miners) await h.trainer(c.address, m.address);
    return c;
  }

  /** Waits for `ok`; a timeout says what was awaited and, with `state`, where things stood. */
  const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 60_000, state?: () => unknown) => {
    const end = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}${state ? `; state: ${JSON.stringify(state())}` : ''}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const weightsRow = async (uid: number) => (await chain.api.query.subtensorModule!.weights!(netuid, uid)).toJSON() as [number, number][];

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

  it('a coordinator with --chain sets weights on its own loop, never on its own uid, and publishes the final scores after the job', async () => {
    await onRunningChain(async (h) => {
      const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '2', '--cohort', '3', '--min-trainers', '3', '--hidden', '8',
        '--local-epochs', '1', '--validation-samples', '70', '--weights-poll-ms', '300',
        '--chain', chain.url, '--netuid', String(netuid), '--hotkey-uri', '//ActiquestValidator']);
      await h.dataset(c.address, 'ds-a');
      // The validator's hotkey trains too: it is scored, and never weighted by itself.
      for (const id of [...miners.map((m) => m.address), validator.address]) await h.trainer(c.address, id);
      expect(await c.done).toBe('DONE');
      await c.flushWeights();
      // Connected to its chain: ready.
      expect(await healthOf(c.address)).toBe('SERVING');
      const pub = c.lastPublication();
      expect(pub).not.toBeNull();
      expect(pub!.mode).toBe('set');
      expect(pub!.uids).toEqual([1, 2]);
      // ds-a is scored too but has no uid on this subnet.
      expect(pub!.unmapped).toEqual(['ds-a']);
      expect(await weightsRow(0)).toEqual(pub!.uids.map((u, i) => [u, pub!.values[i]]));
      expect(h.progress.some((l) => new RegExp(`^weights set \\(set\\) on subnet ${netuid} at block ${pub!.block}: 2 uids`).test(l))).toBe(true);
      const readReport = () => JSON.parse(fs.readFileSync(path.join(h.dir, 'out', 'weights.json'), 'utf8')) as Record<string, unknown>;
      await until('weights.json to hold the last publication', () => fs.existsSync(path.join(h.dir, 'out', 'weights.json')) && readReport().block === pub!.block);
      const report = readReport();
      expect(report).toMatchObject({ chain: { url: chain.url, netuid, hotkey: validator.address, uid: 0 }, mode: 'set', block: pub!.block, uids: pub!.uids, values: pub!.values });
      expect(c.weightsStatus()).toMatchObject({ connected: true, mode: 'set', uid: 0, permit: true });
      // And to anyone who asks the coordinator.
      const client = makeClient(CoordinatorClient, c.address);
      try {
        const st = await callUnary(client, 'GetStatus', {}, { timeoutMs: 5000 });
        expect(st.weights).toMatchObject({ connected: true, mode: 'set', uid: 0, permit: true, lastBlock: pub!.block });
      } finally {
        client.close();
      }
      // The mode and the publications in metrics.
      const scraped = await (await fetch(`http://${c.metricsAddress}/metrics`)).text();
      expect(scraped).toMatch(/^actiquest_weights_mode\{mode="set",role="coordinator"\} 1$/m);
      expect(scraped).toMatch(/^actiquest_weights_publications_total\{mode="set",role="coordinator"\} [1-9]\d*$/m);
      expect(scraped).toContain(`actiquest_weights_last_block{role="coordinator"} ${c.publications().at(-1)!.block}`);
      expect(scraped).toMatch(/^actiquest_chain_connected\{role="coordinator"\} 1$/m);
    });
  }, 300_000);

  it('keeps training through a chain outage and sets weights again by itself once the chain is back', async () => {
    const h = new Harness();
    const relay = await chainRelay(chain.url);
    const stop = chain.produceBlocks(300);
    try {
      const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '400', '--cohort', '2', '--min-trainers', '2', '--hidden', '8',
        '--local-epochs', '1', '--validation-samples', '70', '--weights-poll-ms', '300',
        '--chain', relay.url, '--netuid', String(netuid), '--hotkey-uri', '//ActiquestValidator']);
      await h.dataset(c.address, 'ds-a');
      for (const m of miners) await h.trainer(c.address, m.address);
      await until('a first publication', () => c.publications().length > 0);
      await relay.cut();
      const roundsAtCut = c.job.history.length;
      const published = c.publications().length;
      await new Promise((r) => setTimeout(r, 8000));
      // Training went on without the chain.
      expect(c.job.history.length).toBeGreaterThan(roundsAtCut);
      expect(c.weightsStatus()!.connected).toBe(false);
      expect(c.publications().length).toBe(published);
      const back = (await chain.api.rpc.chain.getHeader()).number.toNumber();
      await relay.restore();
      const tempo = Number((await chain.api.query.subtensorModule!.tempo!(netuid)).toString());
      // Weights resume within a tempo of the chain's return (plus the reconnect backoff).
      await until('weights after the outage', () => c.publications().some((p) => p.block > back), 60_000);
      const after = c.publications().find((p) => p.block > back)!;
      expect(after.block - back).toBeLessThanOrEqual(3 * (tempo + 1));
      const log = fs.readFileSync(h.logFile('coordinator'), 'utf8');
      expect(log).toContain('"msg":"chain unreachable"');
      expect(log).toContain(`"url":"${relay.url}"`);
      expect(log).not.toContain('[object Object]');
    } finally {
      await stop();
      await relay.close();
      await h.close();
    }
  }, 300_000);

  it('says once, clearly, what stops weights and keeps training: a wrong netuid, a hotkey without a permit', async () => {
    for (const [flags, expected] of [
      [['--netuid', '999', '--hotkey-uri', '//ActiquestValidator'], 'subnet 999: not found on this chain'],
      [['--netuid', String(netuid), '--hotkey-uri', `//TrainerA`], `has no validator permit on subnet ${netuid}`],
    ] as const) {
      const h = new Harness();
      try {
        const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '2', '--cohort', '2', '--min-trainers', '2', '--hidden', '8',
          '--local-epochs', '1', '--validation-samples', '70', '--weights-poll-ms', '200', '--final-weights-wait-s', '600', '--chain', chain.url, ...flags]);
        await h.dataset(c.address, 'ds-a');
        for (const m of ['t1', 't2']) await h.trainer(c.address, m);
        expect(await c.done).toBe('DONE');
        await until(`the loop to say ${expected}`, () => c.weightsStatus()!.waiting?.includes(expected) === true);
        // Several more looks at the chain; the operator is told once.
        await new Promise((r) => setTimeout(r, 1500));
        const log = fs.readFileSync(h.logFile('coordinator'), 'utf8');
        expect(log.split('\n').filter((l) => l.includes(expected)).length).toBe(1);
        // Publishing the final scores does not wait out --final-weights-wait-s for what waiting cannot cure.
        const flushed = await Promise.race([c.flushWeights().then(() => 'returned'), new Promise((r) => setTimeout(() => r('still waiting'), 30_000))]);
        expect(flushed).toBe('returned');
      } finally {
        await h.close();
      }
    }
  }, 300_000);

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

  it('commits, sends no reveal before its window, and reveals in the reveal epoch from the stored salt (as after a restart)', async () => {
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
      const clock = async () => {
        const m = await readMetagraph(api, netuid);
        return { block: m.block, tempo: m.hyperparams.tempo, revealPeriodEpochs: m.hyperparams.revealPeriodEpochs };
      };
      const early = await revealDue(api, chain.sender(validator), store, await clock());
      expect(early).toEqual([{ hash: pending.hash, result: 'waiting', reason: expect.stringMatching(/^the reveal window is epoch \d+; the chain is in epoch \d+$/) }]);
      // A restarted coordinator reads the same file.
      const reopened = new PendingCommitStore(store.file);
      expect(reopened.list().map((c) => c.salt)).toEqual([pending.salt]);
      let outcome = early;
      // An epoch is tempo + 1 = 6 blocks and the reveal window one epoch: step a block at a time.
      for (let i = 0; i < 20 && outcome[0]?.result === 'waiting'; i++) {
        await chain.blocks(1);
        outcome = await revealDue(api, chain.sender(validator), reopened, await clock());
      }
      expect(outcome).toEqual([{ hash: pending.hash, result: 'revealed' }]);
      expect(reopened.list()).toEqual([]);
      expect(await weightsRow(0)).toEqual([[1, 20000], [2, 65535]]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a coordinator told to use CRv2 commits once a tempo and reveals each commit in its window', async () => {
    await onRunningChain(async (h) => {
      const c = await runOnChain(h, 4, ['--weights-mode', 'crv2']);
      await until('a revealed commit', () => c.weightsStatus()!.revealsSeen > 0);
      const pubs = c.publications();
      expect(pubs.every((p) => p.mode === 'crv2')).toBe(true);
      const log = fs.readFileSync(h.logFile('coordinator'), 'utf8');
      expect(log).not.toContain('RevealTooEarly');
      expect(log).not.toContain('InvalidRevealCommitHashNotMatch');
      // What stands on chain is one of the committed weight sets.
      const stored = await weightsRow(0);
      expect(pubs.some((p) => JSON.stringify(p.uids.map((u, i) => [u, p.values[i]])) === JSON.stringify(stored))).toBe(true);
    });
  }, 300_000);

  it('a refusal a retry cannot cure is said once and not sent again until something changes', async () => {
    const { api } = chain;
    await chain.sudo(api.tx.adminUtils!.sudoSetCommitRevealWeightsEnabled!(netuid, true), 'commit-reveal on');
    await onRunningChain(async (h) => {
      // set_weights on a commit-reveal subnet: refused by the runtime, every time.
      const c = await startOnChain(h, 2, ['--weights-mode', 'set', '--weights-poll-ms', '200']);
      expect(await c.done).toBe('DONE');
      const refusals = () => fs.readFileSync(h.logFile('coordinator'), 'utf8').split('\n').filter((l) => l.includes('CommitRevealEnabled'));
      // A look that began before the last round's scores may be refused after the job ends
      // (its weights are not the final ones): wait until no refusal has come for 5 s (a loaded
      // machine stretches a look that was in flight past 2 s).
      for (let seen = -1; refusals().length === 0 || refusals().length !== seen;) {
        seen = refusals().length;
        await new Promise((r) => setTimeout(r, 5000));
      }
      expect(c.weightsStatus()!.waiting).toMatch(/CommitRevealEnabled/);
      const before = refusals().length;
      // Fifteen more looks at the chain with the scores final: nothing sent, nothing said.
      await new Promise((r) => setTimeout(r, 3000));
      const refused = refusals();
      expect(before).toBeGreaterThanOrEqual(1);
      expect(refused.length).toBe(before);
      expect(refused[0]).toContain('not retried until the subnet\'s rules, the weights or this hotkey\'s standing change');
      expect(c.publications()).toEqual([]);
    });
  }, 300_000);

  it('CRv3: commits timelocked weights that the runtime reveals with the beacon\'s pulse; a wrong pulse leaves them unapplied and is reported', async () => {
    const { api } = chain;
    await chain.sudo(api.tx.adminUtils!.sudoSetCommitRevealWeightsEnabled!(netuid, true), 'commit-reveal on');
    await chain.sudo(api.tx.adminUtils!.sudoSetWeightsSetRateLimit!(netuid, 0), 'rate limit 0');
    await chain.sudo(api.tx.adminUtils!.sudoSetCommitRevealWeightsInterval!(netuid, 2), 'reveal period 2');
    // The chain's beacon becomes one of our own (TIMELOCK.md): its pulses are ours to write.
    const beacon = testBeacon(0xac71e57n);
    const config = (await api.query.drand!.beaconConfig!()).toJSON() as Record<string, unknown>;
    await chain.setStorage({ Drand: { BeaconConfig: { ...config, publicKey: `0x${beacon.publicKey}` } } });
    expect(await readBeacon(api)).toMatchObject({ publicKey: beacon.publicKey });
    /** Pulses for the rounds around now, signed as `sign` says. */
    const pulses = async (sign: (r: number) => string) => {
      const now = Math.floor((Date.now() / 1000 - Number(config.genesisTime)) / Number(config.period));
      const rounds = Array.from({ length: 120 }, (_, i) => now - 60 + i);
      await chain.setStorage({ Drand: {
        Pulses: rounds.map((r) => [[r], { round: r, randomness: `0x${'11'.repeat(32)}`, signature: `0x${sign(r)}` }]),
        LastStoredRound: rounds.at(-1),
      } });
    };
    await pulses((r) => beacon.sign(r));
    await onRunningChain(async (h) => {
      const c = await startOnChain(h, 400, []);
      await until('a timelocked weight set revealed by the chain', () => c.weightsStatus()!.revealsSeen > 0, 120_000);
      const pubs = c.publications();
      expect(c.weightsStatus()!.mode).toBe('crv3');
      expect(pubs.every((p) => p.mode === 'crv3' && p.revealRound! > 0)).toBe(true);
      const stored = await weightsRow(0);
      expect(pubs.some((p) => JSON.stringify(p.uids.map((u, i) => [u, p.values[i]])) === JSON.stringify(stored))).toBe(true);
      expect(h.progress.some((l) => /^weights committed \(crv3\) on subnet \d+ at block \d+: 2 uids.*; the chain reveals them at drand round \d+/.test(l))).toBe(true);
      // Pulses whose signatures are another round's: the chain cannot open the commits.
      await pulses((r) => beacon.sign(r + 1));
      // A commit revealed before the new pulses may be reported for another reason first: the
      // wrong pulse must be reported, as what it is.
      const wrongPulse = /^the chain's pulse for round \d+ has a signature that does not open the commit/;
      await until('a wrong pulse reported', () => c.weightsStatus()!.revealFailures.some((f) => wrongPulse.test(f.reason)), 120_000);
      const log = fs.readFileSync(h.logFile('coordinator'), 'utf8');
      expect(log).toContain('"msg":"timelocked weights not revealed"');
    });
  }, 300_000);

  it('a subnet of two validators: trainers and dataset nodes given only --chain, --netuid and a wallet work for both; free-riders earn the least', async () => {
    const { api, keyring, alice } = chain;
    const tx = api.tx;
    const key = (name: string) => keyring.addFromUri(`//${name}`);
    const [v1, v2] = [key('SubnetV1'), key('SubnetV2')];
    const trainers = ['SubnetT1', 'SubnetT2', 'SubnetT3', 'SubnetT4'].map(key);
    const datasets = ['SubnetD1', 'SubnetD2'].map(key);
    await chain.sender(alice).send(tx.subtensorModule!.registerNetwork!(v1.address), 'register_network');
    const net = Number((await api.query.subtensorModule!.totalNetworks!()).toString()) - 1;
    await chain.blocks(11);
    await chain.sender(alice).send(tx.subtensorModule!.startCall!(net), 'start_call');
    // Eight registrations in one block (batched): above the default registrations a block allows.
    await chain.sudo(tx.utility.batchAll([
      tx.adminUtils!.sudoSetMaxRegistrationsPerBlock!(net, 20), tx.adminUtils!.sudoSetTargetRegistrationsPerInterval!(net, 20),
      tx.adminUtils!.sudoSetWeightsSetRateLimit!(net, 0), tx.adminUtils!.sudoSetCommitRevealWeightsEnabled!(net, false),
      tx.adminUtils!.sudoSetTempo!(net, 5), tx.adminUtils!.sudoSetMaxAllowedValidators!(net, 2), tx.adminUtils!.sudoSetServingRateLimit!(net, 0),
    ]), 'subnet rules');
    await chain.sender(alice).send(tx.utility.batchAll([
      ...[v2, ...trainers, ...datasets].map((k) => tx.subtensorModule!.burnedRegister!(net, k.address)),
      ...[v1, v2].map((k) => tx.balances.transferKeepAlive(k.address, 10_000_000_000n)),
    ]), 'registrations');
    // Different stakes: the first validator's share of a trainer is twice the second's.
    await chain.sender(alice).send(tx.utility.batchAll([
      tx.subtensorModule!.addStake!(v1.address, net, 200_000_000_000n), tx.subtensorModule!.addStake!(v2.address, net, 100_000_000_000n),
    ]), 'add_stake');
    await chain.blocks(12);
    const mg = await readMetagraph(api, net);
    const uidOf = new Map(mg.neurons.map((n) => [n.hotkey, n.uid]));
    expect(mg.neurons.filter((n) => n.validatorPermit).map((n) => n.hotkey).sort()).toEqual([v1.address, v2.address].sort());

    await onRunningChain(async (h) => {
      const coordinators: Awaited<ReturnType<Harness["coordinator"]>>[] = [];
      const startValidator = async (i: 1 | 2) => {
        // 127.0.0.2 and .3: loopback addresses the chain accepts (it refuses 127.0.0.1).
        coordinators.push(await h.coordinator(['--listen', `127.0.0.${i + 1}:0`, '--out', path.join(h.dir, `v${i}`), '--log-file', h.logFile(`coordinator-v${i}`),
          '--secure-aggregation', 'false', '--rounds', '4', '--cohort', '4', '--min-trainers', '4', '--hidden', '8', '--local-epochs', '1',
          '--validation-samples', '70', '--weights-poll-ms', '300', '--chain', chain.url, '--netuid', String(net), '--hotkey-uri', `//SubnetV${i}`]));
      };
      await startValidator(1);
      await until('the first endpoint on chain', () => coordinators[0]!.weightsStatus()!.announced !== null);
      // Each look is a runtime call the in-process chain executes: six nodes looking every 3 s keep it responsive.
      const discover = ['--chain', chain.url, '--netuid', String(net), '--metagraph-refresh-s', '3'];
      for (const [i, d] of ['SubnetD1', 'SubnetD2'].entries()) await h.dataset('', `ds-${i}`, [...discover, '--hotkey-uri', `//${d}`]);
      const nodes: Awaited<ReturnType<Harness["trainer"]>>[] = [];
      for (const [i, t] of ['SubnetT1', 'SubnetT2', 'SubnetT3', 'SubnetT4'].entries()) {
        // T3 and T4 free-ride: they send no change at all.
        const hooks = i >= 2 ? { plantUpdate: (d: Float32Array) => new Float32Array(d.length) } : {};
        nodes.push(await h.trainer('', '', [...discover, '--hotkey-uri', `//${t}`, '--log-file', h.logFile(`trainer-${t}`)], hooks));
      }
      const state = () => ({ trainers: nodes.map((n) => n.validators()), validators: coordinators.map((c) => c.weightsStatus()) });
      await until('every trainer working for the first validator', () => nodes.every((n) => n.validators().length === 1), 120_000, state);
      // A validator that comes later is taken on at the next look at the chain.
      await startValidator(2);
      await until('the second endpoint on chain', () => coordinators[1]!.weightsStatus()!.announced !== null, 120_000, state);
      await until('every trainer working for both validators', () => nodes.every((n) => n.validators().length === 2), 120_000, state);
      // Shares follow stake: about 2 to 1.
      const shares = new Map(nodes[0]!.validators().map((v) => [v.hotkey, v.share]));
      expect(shares.get(v1.address)!).toBeGreaterThan(0.6);
      expect(shares.get(v1.address)! + shares.get(v2.address)!).toBeCloseTo(1, 5);
      expect(await coordinators[0]!.done).toBe('DONE');
      expect(await coordinators[1]!.done).toBe('DONE');
      for (const c of coordinators) {
        // Every trainer reported to each validator, and each validator set weights.
        expect(new Set(c.job.history.flatMap((r) => r.reporters))).toEqual(new Set(trainers.map((t) => t.address)));
        await c.flushWeights();
        expect(c.lastPublication()).not.toBeNull();
        expect(c.weightsStatus()!.announced).toMatch(/^127\.0\.0\.[23]:\d+$/);
      }
      // Epochs come with the blocks the chain builds meanwhile: wait for one that counts both
      // validators' weights (a validator's trust is 0 until then).
      const vtrustOf = async () => {
        const vtrust = (await api.query.subtensorModule!.validatorTrust!(net)).toJSON() as number[];
        return [v1, v2].map((v) => vtrust[uidOf.get(v.address)!]! / 65535);
      };
      await until('an epoch that counts both validators\' weights', async () => {
        // Epochs need blocks: build one here too (the block producer can lag behind the transactions).
        await Promise.race([chain.blocks(1), new Promise((r) => setTimeout(r, 3000))]);
        return (await vtrustOf()).every((t) => t > 0);
      }, 180_000);
      // The two validators scored the same nodes by themselves and broadly agree. Not exactly:
      // after four rounds their dataset nodes' scores differ by up to a quarter, and consensus
      // follows the first validator (two thirds of the stake), so the second's trust is below 1.
      for (const t of await vtrustOf()) expect(t).toBeGreaterThan(0.6);
      const incentive = (await api.query.subtensorModule!.incentive!(net)).toJSON() as number[];
      const of = (k: KeyringPair) => incentive[uidOf.get(k.address)!]!;
      expect(Math.max(of(trainers[2]!), of(trainers[3]!))).toBeLessThan(Math.min(of(trainers[0]!), of(trainers[1]!)));
      // The second validator goes, and its endpoint on chain now answers nothing: trainers follow
      // the chain, say what fails, and keep working for the first.
      await coordinators[1]!.close();
      await announceAxon(api, chain.sender(v2), net, '127.0.0.9', 9);
      await until('trainers following the new endpoint', () => nodes.every((n) => n.validators().some((v) => v.address === '127.0.0.9:9')), 120_000, state);
      expect(nodes[0]!.validators().map((v) => v.hotkey).sort()).toEqual([v1.address, v2.address].sort());
      await until('the dead endpoint reported', () => fs.readFileSync(h.logFile('trainer-SubnetT1'), 'utf8').includes('"coordinator":"127.0.0.9:9"'), 30_000);
      const t1 = fs.readFileSync(h.logFile('trainer-SubnetT1'), 'utf8');
      expect(t1).toContain('"msg":"validator dropped"');
      expect(t1).toContain('"msg":"register failed; retrying","coordinator":"127.0.0.9:9"');
    }, 1000);
  }, 900_000);

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

describe('a coordinator whose chain is unreachable', () => {
  it('starts, trains to the end, and says which URL failed and why, retrying with backoff', async () => {
    const h = new Harness();
    try {
      const url = `ws://127.0.0.1:${await freePort()}`;
      const c = await h.coordinator(['--secure-aggregation', 'false', '--rounds', '2', '--cohort', '2', '--min-trainers', '2', '--hidden', '8',
        '--local-epochs', '1', '--validation-samples', '70', '--weights-poll-ms', '100', '--chain', url, '--netuid', '1', '--hotkey-uri', '//Alice']);
      await h.dataset(c.address, 'ds-a');
      for (const m of ['t1', 't2']) await h.trainer(c.address, m);
      expect(await c.done).toBe('DONE');
      expect(c.weightsStatus()).toMatchObject({ connected: false, lastPublication: null });
      // Not ready for a probe without its chain; its services still answer.
      expect(await healthOf(c.address)).toBe('NOT_SERVING');
      expect(await healthOf(c.address, 'actiquest.v1.Coordinator')).toBe('SERVING');
      expect(c.weightsStatus()!.waiting).toMatch(new RegExp(`^subtensor at ${url}: .+; retrying in \\d+ s$`));
      const unreachable = () => fs.readFileSync(h.logFile('coordinator'), 'utf8').split('\n').filter((l) => l.includes('"msg":"chain unreachable"'));
      const end = Date.now() + 20_000;
      while (unreachable().length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
      const lines = unreachable();
      expect(lines.length).toBeGreaterThanOrEqual(3);
      const delays = lines.map((l) => (JSON.parse(l) as { retryInMs: number }).retryInMs);
      expect(delays.slice(0, 3)).toEqual([1000, 2000, 4000]);
      expect(lines[0]).toContain(`"url":"${url}"`);
      expect(lines[0]).not.toContain('[object Object]');
    } finally {
      await h.close();
    }
  }, 120_000);
});
