/** Every phase transition of a round, valid and invalid. */
import { afterEach, describe, expect, it } from 'vitest';
import { Round } from './round.js';
import { DuplicateUpdateError, NonFiniteValueError, RoundClosedError, TaskNotFoundError, UpdateLengthError } from '../errors.js';

const rounds: Round<null>[] = [];
function makeRound(members = 3, deadlineMs = Date.now() + 60_000): Round<null> {
  const r = new Round<null>({
    jobId: 'j', round: 4, attempt: 1, paramCount: 3, deadlineMs,
    members: Array.from({ length: members }, (_, i) => ({ nodeId: `n${i}`, taskId: `t${i}`, task: null })),
  });
  rounds.push(r);
  return r;
}
afterEach(() => {
  for (const r of rounds.splice(0)) r.cancel();
});
const info = { numSamples: 10, trainLoss: 1, trainSeconds: 1 };

describe('Round', () => {
  it('TRAIN -> AGGREGATE when every member reported, and sums weighted updates', async () => {
    const r = makeRound(2);
    r.acceptUpdate('t0', 'n0', Float32Array.from([1, 2, 3]), { ...info, numSamples: 1 });
    expect(r.phase).toBe('TRAIN');
    r.acceptUpdate('t1', 'n1', Float32Array.from([1, 0, 0]), { ...info, numSamples: 3 });
    expect(await r.trained).toEqual({ reason: 'all-reported', reported: 2, dropped: 0, missing: 0 });
    expect(r.phase).toBe('AGGREGATE');
    expect(Array.from(r.aggregate.mean())).toEqual([1, 0.5, 0.75]);
    r.finish(true);
    expect(r.phase).toBe('DONE');
  });

  it('ends early when the members that are left have all reported', async () => {
    const r = makeRound(3);
    r.acceptUpdate('t0', 'n0', Float32Array.from([1, 1, 1]), info);
    r.drop('n1');
    expect(r.phase).toBe('TRAIN');
    r.acceptUpdate('t2', 'n2', Float32Array.from([1, 1, 1]), info);
    expect(await r.trained).toMatchObject({ reason: 'members-lost', reported: 2, dropped: 1 });
  });

  it('ends at the deadline with whoever reported', async () => {
    const r = makeRound(3, Date.now() + 50);
    r.acceptUpdate('t0', 'n0', Float32Array.from([1, 1, 1]), info);
    expect(await r.trained).toEqual({ reason: 'deadline', reported: 1, dropped: 0, missing: 2 });
    r.finish(false);
    expect(r.phase).toBe('FAILED');
  });

  it('refuses an update after TRAIN ended, naming the phase', async () => {
    const r = makeRound(1);
    r.acceptUpdate('t0', 'n0', Float32Array.from([1, 1, 1]), info);
    await r.trained;
    expect(() => r.checkUpload('t0', 'n0', 3)).toThrow(RoundClosedError);
    expect(() => r.checkUpload('t0', 'n0', 3)).toThrow('job j round 4: expected phase TRAIN, got AGGREGATE');
  });

  it('refuses a duplicate, a foreign task, a dropped member, a wrong length', () => {
    const r = makeRound(3);
    r.acceptUpdate('t0', 'n0', Float32Array.from([1, 1, 1]), info);
    expect(() => r.acceptUpdate('t0', 'n0', Float32Array.from([1, 1, 1]), info)).toThrow(DuplicateUpdateError);
    expect(() => r.checkUpload('t1', 'n0', 3)).toThrow(TaskNotFoundError);
    expect(() => r.checkUpload('nope', 'n1', 3)).toThrow('task nope: not assigned to node n1');
    expect(() => r.checkUpload('t1', 'n1', 4)).toThrow(UpdateLengthError);
    expect(() => r.checkUpload('t1', 'n1', 4)).toThrow('update length: expected 3 float32 parameters, got 4');
    r.drop('n2');
    expect(() => r.checkUpload('t2', 'n2', 3)).toThrow(/DROPPED/);
  });

  it('refuses non-finite values without touching the sum', () => {
    const r = makeRound(2);
    r.acceptUpdate('t0', 'n0', Float32Array.from([1, 2, 3]), info);
    const before = Array.from(r.aggregate.sum);
    expect(() => r.acceptUpdate('t1', 'n1', Float32Array.from([1, NaN, 3]), info)).toThrow(NonFiniteValueError);
    expect(() => r.acceptUpdate('t1', 'n1', Float32Array.from([Infinity, 0, 3]), info)).toThrow('update: expected finite numbers, got Infinity at parameter 0');
    expect(Array.from(r.aggregate.sum)).toEqual(before);
    expect(r.member('n1')!.status).toBe('assigned');
    expect(r.isTaskActive('t1')).toBe(true);
    expect(r.isTaskActive('t0')).toBe(false);
  });

  it('keeps a task in the round once its update is in, until it is dropped or the round closes', () => {
    const r = makeRound(3);
    r.acceptUpdate('t0', 'n0', Float32Array.from([1, 1, 1]), info);
    expect(r.isTaskInRound('t0')).toBe(true);
    expect(r.isTaskInRound('t1')).toBe(true);
    r.drop('n1');
    expect(r.isTaskInRound('t1')).toBe(false);
    expect(r.isTaskInRound('nope')).toBe(false);
    // The last update in ends TRAIN.
    r.acceptUpdate('t2', 'n2', Float32Array.from([1, 1, 1]), info);
    expect(r.phase).toBe('AGGREGATE');
    expect(r.isTaskInRound('t0')).toBe(false);
    expect(r.isTaskInRound('t2')).toBe(false);
  });

  it('with no members at all, ends at once', async () => {
    expect(await makeRound(0).trained).toMatchObject({ reason: 'members-lost', reported: 0 });
  });
});
