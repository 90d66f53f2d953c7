/**
 * A trainer's part in one group's SecAgg+ instance, over the coordinator's stage RPCs: it runs
 * the key stages (advertise, share keys, receive shares) while local training goes on, then
 * masks the update, and answers the unmask request. The protocol itself is
 * `src/secagg/node.ts`; this file only moves its messages.
 */
import { callUnary, untilAnswered, type CoordinatorStub, type SecAggAwaitResponse, type SecAggConfig, type Task } from '../src/wire/index.js';
import { SecAggNode, type HotkeyBinding, type SecAggParams, type UnmaskShare } from '../src/secagg/index.js';
import type { Identity } from '../src/crypto/index.js';

/** Thrown when the coordinator says this node's part in its group is over. */
export class SecAggAbortedError extends Error {
  constructor(readonly reason: string) {
    super(`secure aggregation aborted: ${reason}`);
    this.name = 'SecAggAbortedError';
  }
}

const CALL = { timeoutMs: 10_000 };

/** One task's secure session. */
export class SecureSession {
  readonly node: SecAggNode;
  private readonly identities: Map<string, Uint8Array>;

  constructor(private readonly client: CoordinatorStub, private readonly nodeId: string, private readonly task: Task, identity: Identity, hotkey?: HotkeyBinding,
    private readonly plantReveals?: (reveals: UnmaskShare[]) => void) {
    const c = task.secagg as SecAggConfig;
    const params: SecAggParams = {
      roundId: c.roundId, groupId: c.groupId, members: c.members, neighbours: c.neighbours, threshold: c.threshold,
      clipRange: c.clipRange, quantBits: c.quantBits, vectorLength: c.vectorLength, maxWeight: c.maxWeight, seed: c.seed,
    };
    this.identities = new Map(c.members.map((m, i) => [m, c.identityKeys[i]!]));
    this.node = new SecAggNode(params, nodeId, identity, hotkey);
  }

  /** Sends a stage's message; one whose answer was lost is sent again (the coordinator takes the same message twice). */
  private submit(payload: Record<string, unknown>, signal: AbortSignal): Promise<unknown> {
    return untilAnswered(() => callUnary(this.client, 'SecAggSubmit', { nodeId: this.nodeId, taskId: this.task.taskId, ...payload }, { ...CALL, signal }), signal);
  }

  /** Long-polls the coordinator until the stage's input is ready. */
  private async awaitStage(stage: 'SHARE_KEYS' | 'MASKED_INPUT' | 'CONSISTENCY' | 'UNMASK', signal: AbortSignal): Promise<SecAggAwaitResponse> {
    for (;;) {
      if (signal.aborted) throw signal.reason ?? new Error('aborted');
      const res = await untilAnswered(() => callUnary(this.client, 'SecAggAwait',
        { nodeId: this.nodeId, taskId: this.task.taskId, stage, waitMs: 10_000 }, { timeoutMs: 20_000, signal }), signal);
      if (res.result === 'aborted') throw new SecAggAbortedError(res.aborted ?? 'aborted');
      if (res.result !== 'retryAfterMs') return res;
    }
  }

  /** ADVERTISE_KEYS, SHARE_KEYS and receiving shares: everything before the masked input. */
  async prepare(signal: AbortSignal): Promise<void> {
    await this.submit({ payload: 'advertisement', advertisement: this.node.advertise() }, signal);
    const ads = await this.awaitStage('SHARE_KEYS', signal);
    if (ads.result !== 'advertisements') throw new SecAggAbortedError(`expected advertisements, got ${ads.result}`);
    const shares = await this.node.shareKeys(ads.advertisements!.advertisements, this.identities);
    await this.submit({ payload: 'shares', shares: { shares } }, signal);
    const mine = await this.awaitStage('MASKED_INPUT', signal);
    if (mine.result !== 'shares') throw new SecAggAbortedError(`expected shares, got ${mine.result}`);
    this.node.receiveShares(mine.shares!.shares);
  }

  /**
   * CONSISTENCY, then UNMASK: signs the survivor set it is given, then reveals what it may, only
   * for that set and only with t survivors' signatures over it.
   */
  async unmask(signal: AbortSignal): Promise<void> {
    const set = await this.awaitStage('CONSISTENCY', signal);
    if (set.result !== 'survivors') throw new SecAggAbortedError(`expected the survivor set, got ${set.result}`);
    await this.submit({ payload: 'consistency', consistency: this.node.signSurvivors(set.survivors!) }, signal);
    const req = await this.awaitStage('UNMASK', signal);
    if (req.result !== 'unmask') throw new SecAggAbortedError(`expected an unmask request, got ${req.result}`);
    const reveals = this.node.unmask(req.unmask!);
    this.plantReveals?.(reveals);
    await this.submit({ payload: 'unmask', unmask: { shares: reveals } }, signal);
  }
}
