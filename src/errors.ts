/**
 * Domain errors: one class per condition, each carrying its data. `kind` decides the gRPC
 * status in exactly one place (`wire/status.ts`); messages say what failed, what was expected
 * and what arrived.
 */

/** How an error maps onto a gRPC status (see STYLE.md, "Errors"). */
export type ErrorKind =
  | 'invalid-argument'
  | 'failed-precondition'
  | 'not-found'
  | 'already-exists'
  | 'unauthenticated'
  | 'permission-denied'
  | 'resource-exhausted'
  | 'deadline-exceeded'
  | 'unavailable';

/** Base class of every error the project throws on purpose. */
export abstract class ActiquestError extends Error {
  abstract readonly kind: ErrorKind;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Ids quoted in messages are cut to this many characters (a status message travels in a header). */
export const QUOTE_CHARS = 64;
/** What a field got, as a message says it, is cut to this many characters. */
const GOT_CHARS = 256;

/** `got` as a message quotes it: cut to {@link QUOTE_CHARS} characters, with its length, when longer. */
export function cut(value: string, max = QUOTE_CHARS): string {
  const got = String(value);
  return got.length <= max ? got : `${got.slice(0, max)}... (${got.length} characters)`;
}

/** `value` quoted as JSON, cut to {@link QUOTE_CHARS} characters with its length when longer. */
export function quote(value: string): string {
  return value.length <= QUOTE_CHARS ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, QUOTE_CHARS))}... (${value.length} characters)`;
}

/** A field is missing or malformed. */
export class InvalidFieldError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly field: string, readonly expected: string, readonly got: string) {
    super(`${field}: expected ${expected}, got ${cut(got, GOT_CHARS)}`);
  }
}

/** A blob's bytes do not add up to the length its header announced. */
export class BlobLengthError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly expected: number, readonly got: number) {
    super(`blob length: expected ${expected} bytes, got ${got}`);
  }
}

/** A blob's sha256 differs from the digest it was announced (or listed) with. */
export class DigestMismatchError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly what: string, readonly expected: string, readonly got: string) {
    super(`${what}: expected sha256 ${expected}, got ${got}`);
  }
}

/** A shard whose bytes match their digest but are not a shard of the task as its dataset node listed it. */
export class BadShardError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly shardId: string, readonly reason: string) {
    super(`shard ${shardId}: ${reason}`);
  }
}

/** Chunks arrived out of order, or more chunks than announced. */
export class ChunkOrderError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly expected: number, readonly got: number) {
    super(`chunk index: expected ${expected}, got ${got}`);
  }
}

/** A single chunk is larger than the negotiated chunk size. */
export class ChunkTooLargeError extends ActiquestError {
  readonly kind = 'resource-exhausted';
  constructor(readonly bytes: number, readonly max: number) {
    super(`chunk size: expected at most ${max} bytes, got ${bytes}`);
  }
}

/** A node has as many calls in progress as one may have. */
export class TooManyCallsError extends ActiquestError {
  readonly kind = 'resource-exhausted';
  constructor(readonly caller: string, readonly max: number) {
    super(`hotkey ${cut(caller)}: ${max} calls in progress, the most one node may have (--max-calls-per-node); retry when one ends`);
  }
}

/** Updates in flight already hold the bytes the coordinator allows for them. */
export class UploadBudgetError extends ActiquestError {
  readonly kind = 'resource-exhausted';
  constructor(readonly bytes: number, readonly held: number, readonly max: number) {
    super(`upload of ${bytes} bytes: updates in flight hold ${held} of the ${max} bytes allowed (--max-upload-mib); retry shortly`);
  }
}

/** The coordinator could not spool an upload to its disk (full, or failing). */
export class SpoolWriteError extends ActiquestError {
  readonly kind = 'resource-exhausted';
  constructor(readonly file: string, readonly code: string, detail: string) {
    super(`the coordinator could not store an upload on its disk (${code}: ${cut(detail)}); retry later`);
  }
}

/** An upload went longer than allowed without a message. */
export class UploadIdleError extends ActiquestError {
  readonly kind = 'deadline-exceeded';
  constructor(readonly idleMs: number) {
    super(`upload: expected a chunk at least every ${idleMs / 1000} s (--upload-idle-s), got none for that long`);
  }
}

/** A newer upload for the same task replaced this one. */
export class UploadSupersededError extends ActiquestError {
  readonly kind = 'resource-exhausted';
  constructor(readonly taskId: string) {
    super(`upload for task ${cut(taskId)}: replaced by a newer upload for the same task (one at a time)`);
  }
}

/** A whole blob is larger than allowed. */
export class BlobTooLargeError extends ActiquestError {
  readonly kind = 'resource-exhausted';
  constructor(readonly bytes: number, readonly max: number) {
    super(`blob size: expected at most ${max} bytes, got ${bytes}`);
  }
}

/** An update's parameter count differs from the model's. */
export class UpdateLengthError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly expected: number, readonly got: number) {
    super(`update length: expected ${expected} float32 parameters, got ${got}`);
  }
}

/** A plaintext update holds NaN or an infinity. */
export class NonFiniteValueError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly index: number, readonly value: number) {
    super(`update: expected finite numbers, got ${value} at parameter ${index}`);
  }
}

/** The trainer is not registered (or was forgotten): it should register again. */
export class NodeNotFoundError extends ActiquestError {
  readonly kind = 'not-found';
  constructor(readonly nodeId: string) {
    super(`node ${cut(nodeId)}: not registered; call RegisterTrainer first`);
  }
}

/** No job with this id. */
export class JobNotFoundError extends ActiquestError {
  readonly kind = 'not-found';
  constructor(readonly jobId: string) {
    super(`job ${cut(jobId)}: not found`);
  }
}

/** The job has no model for the asked round. */
export class RoundNotFoundError extends ActiquestError {
  readonly kind = 'not-found';
  constructor(readonly jobId: string, readonly round: number, readonly current: number) {
    super(`job ${cut(jobId)}: round ${round} not found; the current round is ${current}`);
  }
}

/** No task with this id was assigned to this node. */
export class TaskNotFoundError extends ActiquestError {
  readonly kind = 'not-found';
  constructor(readonly taskId: string, readonly nodeId: string) {
    super(`task ${cut(taskId)}: not assigned to node ${cut(nodeId)}`);
  }
}

/** The round an update is for no longer takes updates. */
export class RoundClosedError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly jobId: string, readonly round: number, readonly phase: string) {
    super(`job ${cut(jobId)} round ${round}: expected phase TRAIN, got ${phase}`);
  }
}

/** An update names a round other than the one taking updates. */
export class WrongRoundError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly jobId: string, readonly current: number | null, readonly got: number) {
    super(current === null
      ? `job ${jobId}: expected no update (no round in TRAIN), got one for round ${got}`
      : `job ${jobId}: expected an update for round ${current} (in TRAIN), got round ${got}`);
  }
}

/** The task already delivered its update. */
export class DuplicateUpdateError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly taskId: string) {
    super(`task ${cut(taskId)}: update already received`);
  }
}

/** A dataset node has no shard with this id. */
export class ShardNotFoundError extends ActiquestError {
  readonly kind = 'not-found';
  constructor(readonly shardId: string) {
    super(`shard ${cut(shardId)}: not in this node's manifest`);
  }
}

/** The process is shutting down and takes no new work. */
export class ShuttingDownError extends ActiquestError {
  readonly kind = 'unavailable';
  constructor(readonly role: string) {
    super(`${role} is shutting down`);
  }
}

/** A configuration value is out of range or malformed. */
export class ConfigError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly option: string, readonly expected: string, readonly got: string) {
    super(`--${option}: expected ${expected}, got ${got}`);
  }
}

/** A SecAgg+ message arrived in the wrong stage. */
export class StageError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly where: string, readonly expected: string, readonly got: string) {
    super(`${where}: expected stage ${expected}, got ${got}`);
  }
}

/** A node is not (or no longer) a member of the group it wrote to. */
export class NotAMemberError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly nodeId: string, readonly groupId: string, readonly why: string) {
    super(`group ${groupId}: node ${cut(nodeId)} ${why}`);
  }
}

/** The same node sent a stage's message twice (a duplicate or a replay). */
export class DuplicateMessageError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly groupId: string, readonly stage: string, readonly nodeId: string) {
    super(`group ${groupId}: ${stage} from ${cut(nodeId)} already received`);
  }
}

/** A key advertisement whose signature does not verify with the node's identity key. */
export class ForgedAdvertisementError extends ActiquestError {
  readonly kind = 'unauthenticated';
  constructor(readonly nodeId: string, readonly why: string) {
    super(`key advertisement of ${cut(nodeId)}: ${why}`);
  }
}

/** Fewer members than the threshold remain: the group cannot finish. */
export class GroupBelowThresholdError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly groupId: string, readonly stage: string, readonly have: number, readonly need: number) {
    super(`group ${groupId} at ${stage}: expected at least ${need} members, got ${have}`);
  }
}

/** Part of a member's masked input reached the group's sum and the rest could not be read: the sum is lost. */
export class PartialInputError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly groupId: string, readonly nodeId: string, detail: string) {
    super(`group ${groupId}: ${nodeId}'s masked input was folded into the sum in part (${cut(detail)}); the group's sum is lost`);
  }
}

/** The secret rebuilt from a member's shares is not the one it advertised: a share was corrupted. */
export class CorruptShareError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly groupId: string, readonly owner: string) {
    super(`group ${groupId} at UNMASK: expected the shares of ${owner} to rebuild the mask key it advertised, got another key (a member sent a corrupted share)`);
  }
}

/** A member revealed a share that is not the one its owner dealt it (corrupted or forged): refused, the sender named. */
export class CorruptUnmaskShareError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly groupId: string, readonly sender: string, readonly owner: string, readonly why: string) {
    super(`group ${groupId} at UNMASK: ${sender} revealed a share of ${owner} that its owner did not deal (${why}); its shares are refused`);
  }
}

/** An unmask request that would reveal both secrets of one node, or is otherwise unsafe. */
export class UnsafeUnmaskError extends ActiquestError {
  readonly kind = 'invalid-argument';
  constructor(readonly why: string) {
    super(`unmask refused: ${why}`);
  }
}

/** A secure-aggregation message arrived while no round with secure aggregation runs. */
export class NoSecureRoundError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly jobId: string) {
    super(`job ${cut(jobId)}: expected a round with secure aggregation in progress, got none`);
  }
}

/** A node the coordinator has not scored yet. */
export class NotScoredError extends ActiquestError {
  readonly kind = 'not-found';
  constructor(readonly nodeId: string) {
    super(`node ${cut(nodeId)}: no score yet; it is scored once a group it was in has been evaluated`);
  }
}

/** A job id is already taken. */
export class JobExistsError extends ActiquestError {
  readonly kind = 'already-exists';
  constructor(readonly jobId: string) {
    super(`job ${cut(jobId)}: already exists; expected a new job id (or none, for a generated one)`);
  }
}

/** A new job past the number of jobs a coordinator runs at once (each holds a model process). */
export class TooManyJobsError extends ActiquestError {
  readonly kind = 'resource-exhausted';
  constructor(readonly max: number) {
    super(`jobs: expected at most ${max} pending or running at once (the coordinator's --max-active-jobs), got one more; submit again when one has ended`);
  }
}

/** The job is not in a state that allows what was asked. */
export class JobStateError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly jobId: string, readonly expected: string, readonly got: string) {
    super(`job ${cut(jobId)}: expected ${expected}, got ${got}`);
  }
}

/** A request that fails authentication. */
export class UnauthenticatedError extends ActiquestError {
  readonly kind = 'unauthenticated';
  constructor(readonly header: string, readonly expected: string, readonly got: string) {
    super(`${header}: expected ${expected}, got ${got}`);
  }
}

/** An authenticated caller the admission policy does not admit. */
export class NotAdmittedError extends ActiquestError {
  readonly kind = 'permission-denied';
  constructor(readonly address: string, readonly role: string, readonly why: string) {
    super(`hotkey ${address}: not admitted as a ${role} (${why})`);
  }
}

/** A node-scoped request names a node other than the hotkey that signed it. */
export class NodeIdMismatchError extends ActiquestError {
  readonly kind = 'permission-denied';
  constructor(readonly field: string, readonly caller: string, readonly got: string) {
    super(`${field}: expected the signing hotkey's address ${caller}, got ${cut(JSON.stringify(got))}`);
  }
}

/** A lease that does not let this request read this shard. */
export class LeaseRefusedError extends ActiquestError {
  readonly kind = 'permission-denied';
  constructor(readonly field: string, readonly expected: string, readonly got: string) {
    super(`${field}: expected ${expected}, got ${got}`);
  }
}

/** A lease whose signature is not the coordinator's. */
export class LeaseSignatureError extends ActiquestError {
  readonly kind = 'unauthenticated';
  constructor(readonly expected: string, readonly got: string) {
    super(`lease.signature: expected ${expected}, got ${got}`);
  }
}

/**
 * A job's model took more memory than its process may have (`--max-model-memory-mib`): the model
 * process was killed, and the job fails (it is never resumed into the same end).
 */
export class ModelMemoryError extends ActiquestError {
  readonly kind = 'resource-exhausted';
  constructor(readonly what: string, readonly limitBytes: number, readonly rssBytes: number) {
    super(`model process: expected at most ${mibText(limitBytes)} resident (--max-model-memory-mib) while ${what}, got ${mibText(rssBytes)}; it was stopped`);
  }
}

/** A job's model process failed or ended (a wasm trap, a crash, a kill): the job fails with why. */
export class ModelProcessError extends ActiquestError {
  readonly kind = 'failed-precondition';
  constructor(readonly what: string, readonly reason: string) {
    super(`model process: ${cut(reason, GOT_CHARS)} (while ${what})`);
  }
}

const mibText = (bytes: number) => `${Math.round(bytes / 2 ** 20).toLocaleString('en-US')} MiB`;
