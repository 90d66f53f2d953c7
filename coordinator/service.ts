/**
 * The Coordinator gRPC service: registration, heartbeats, long-polled tasks, the global model
 * as a chunk stream, and updates received as chunk streams (checked against the round before a
 * byte is stored, digest-verified, then folded into the round's sum).
 */
import { Metadata } from '@grpc/grpc-js';
import { clientStream, serverStream, unary, preEncoded, coordinatorService, BlobAssembler, bytesToFloat32, encodeBlob, sha256, DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES, BufferPool, type BlobPart, type FetchGlobalModelRequest, type GetStatusRequest, type GetStatusResponse, type GetTaskRequest, type GetTaskResponse, type HeartbeatRequest, type HeartbeatResponse, type RegisterDatasetRequest, type RegisterDatasetResponse, type RegisterTrainerRequest, type RegisterTrainerResponse, type GetScoreResponse, type SecAggAwaitRequest, type SecAggAwaitResponse, type SecAggSubmitRequest, type SubmitUpdateResponse, type UpdateHeader, checkNodeIsCaller, type CoordinatorHandlers } from '../src/wire/index.js';
import {
  ActiquestError, InvalidFieldError, NodeNotFoundError, ShuttingDownError, WrongRoundError, NotScoredError, UploadIdleError, UploadBudgetError,
} from '../src/errors.js';
import { UploadSlots } from './uploads.js';
import type { SpooledInput, UploadSpool } from './spool.js';
import type { NodeRegistry, DatasetRecord } from '../src/rounds/index.js';
import type { SecureAggregation } from '../src/secagg/index.js';
import { type CoordinatorMetrics, REJECT_REASONS } from '../src/metrics/index.js';
import { BoundedMap, type Logger } from '../src/util/index.js';
import type { JobManager, NodeLedger } from '../src/jobs/index.js';
import type { WeightsStatus } from '../src/chain/index.js';
import { getTask } from '../src/tasks/index.js';

/** Longest a GetTask call is held open. */
export const MAX_TASK_WAIT_MS = 30_000;
/** Largest plaintext update accepted: 64 Mi parameters. */
export const MAX_UPDATE_BYTES = 256 << 20;

/**
 * The round's model as the messages of a FetchGlobalModel stream, serialized once per model
 * (every trainer downloads the same bytes) and kept while the model's buffer lives.
 */
const modelStreams = new WeakMap<Buffer, { sha256: string; messages: BlobPart[] }>();
function modelMessages(bytes: Buffer, sha256: string): BlobPart[] {
  let messages = modelStreams.get(bytes)?.sha256 === sha256 ? modelStreams.get(bytes)!.messages : null;
  if (!messages) {
    // The digest the round computed once, not a hash of the whole model per trainer.
    const { header, chunks } = encodeBlob(bytes, DEFAULT_CHUNK_BYTES, Buffer.from(sha256, 'hex'));
    const encode = (m: BlobPart) => preEncoded<BlobPart>(coordinatorService.FetchGlobalModel.responseSerialize(m));
    messages = [encode({ part: 'header', header }), ...chunks.map((chunk) => encode({ part: 'chunk', chunk }))];
    modelStreams.set(bytes, { sha256, messages });
  }
  return messages;
}

/** What the service needs. */
export interface CoordinatorServiceDeps {
  jobs: JobManager;
  /** SS58 address of the key that signs shard leases (told to dataset nodes as they register). */
  leaseKey: string;
  ledger: NodeLedger;
  registry: NodeRegistry;
  datasets: Map<string, DatasetRecord>;
  metrics: CoordinatorMetrics;
  log: Logger;
  heartbeatIntervalMs: number;
  /** The weights loop's state (absent without a chain). */
  weightsStatus?: () => WeightsStatus | null;
  liveTimeoutMs: number;
  closing: () => boolean;
  /** The data plane's port, told to trainers as they register (0: none; updates come here). */
  dataPort?: () => number;
  /**
   * Called with each accepted update's raw bytes and weight (tests of what the coordinator
   * stores). The buffer is reused after the call returns: copy what you keep.
   */
  onUpdateBytes?: (taskId: string, bytes: Buffer, numSamples: number) => void;
  /**
   * Bytes all updates in flight may reserve, the longest an upload may go without a message, and
   * where masked inputs are spooled until they are whole.
   */
  uploads: { maxBytes: number; idleMs: number; spool: UploadSpool };
}

const ID = /^[\w.:-]{1,128}$/;

function checkId(field: string, v: string): void {
  if (!ID.test(v)) throw new InvalidFieldError(field, 'an id of 1 to 128 letters, digits or . _ : -', JSON.stringify(v));
}

/** The largest capacity a trainer may claim (samples a second), and the longest backend or device name. */
const MAX_CAPACITY = 1e7;
const MAX_NAME_CHARS = 128;

function rejectReason(err: unknown): (typeof REJECT_REASONS)[number] {
  if (err instanceof ActiquestError) {
    const r = err.kind.replace('-', '_');
    return (REJECT_REASONS as readonly string[]).includes(r) ? (r as (typeof REJECT_REASONS)[number]) : 'other';
  }
  return 'other';
}

/** The admission role each method asks of a signed caller. */
export function coordinatorRole(method: string): string {
  if (method === 'RegisterDataset') return 'dataset';
  if (method === 'Heartbeat' || method === 'GetScore' || method === 'GetStatus') return 'node';
  return 'trainer';
}

/** The weights loop's state as GetStatus reports it. */
function weightsStatusOf(st: WeightsStatus | null): Pick<GetStatusResponse, 'weights'> {
  if (!st) return { weights: null };
  return {
    weights: {
      connected: st.connected, mode: st.mode ?? '', uid: st.uid ?? -1, permit: st.permit === true, lastBlock: st.lastPublication?.block ?? 0,
      waiting: st.waiting ?? '', announced: st.announced ?? '', revealsSeen: st.revealsSeen, revealFailures: st.revealFailures.map((f) => `round ${f.round}: ${f.reason}`),
    },
  };
}

/** Builds the handlers of `actiquest.v1.Coordinator`. */
export function coordinatorServiceImpl(deps: CoordinatorServiceDeps): CoordinatorHandlers {
  const { log, registry, jobs, ledger, metrics } = deps;
  // Receive buffers are reused across updates; an update is folded into the sum before release.
  const pool = new BufferPool();
  const uploads = new UploadSlots(deps.uploads.maxBytes);
  /** The digest of each SecAggSubmit message accepted, by task and stage, and of each update taken, by node and task. */
  const submitted = new BoundedMap<string, string>(MAX_SUBMISSIONS_KEPT);
  const takenUploads = new BoundedMap<string, string>(MAX_SUBMISSIONS_KEPT);
  /** The secure aggregation of the running round in which `taskId` is `nodeId`'s task. */
  const secureFor = (nodeId: string, taskId: string) => {
    if (!registry.touch(nodeId)) throw new NodeNotFoundError(nodeId);
    return jobs.secureRunnerFor(nodeId, taskId).secure!;
  };
  const admit = () => {
    if (deps.closing()) throw new ShuttingDownError('coordinator');
  };
  return {
    RegisterTrainer: unary(log, 'RegisterTrainer', (req: RegisterTrainerRequest): RegisterTrainerResponse => {
      admit();
      checkId('node_id', req.nodeId);
      checkNodeIsCaller('node_id', req.nodeId, req);
      const cap = req.capacity?.samplesPerSecond ?? 0;
      if (!(cap > 0) || !(cap <= MAX_CAPACITY)) throw new InvalidFieldError('capacity.samples_per_second', `a positive number up to ${MAX_CAPACITY}`, String(cap));
      for (const f of ['backend', 'device'] as const) {
        const v = req.capacity?.[f] ?? '';
        if (v.length > MAX_NAME_CHARS) throw new InvalidFieldError(`capacity.${f}`, `a name of at most ${MAX_NAME_CHARS} characters`, `${v.length} characters`);
      }
      if (req.identityKey.length !== 0 && req.identityKey.length !== 32) {
        throw new InvalidFieldError('identity_key', '32 bytes (an Ed25519 public key) or none', `${req.identityKey.length} bytes`);
      }
      const known = registry.get(req.nodeId) !== undefined;
      registry.register(req.nodeId, cap, req.capacity?.backend ?? '', req.capacity?.device ?? '', Buffer.from(req.identityKey));
      log.info(known ? 'trainer re-registered' : 'trainer registered', { nodeId: req.nodeId, backend: req.capacity?.backend, capacity: cap });
      return { nodeId: req.nodeId, heartbeatIntervalMs: deps.heartbeatIntervalMs, maxChunkBytes: MAX_CHUNK_BYTES, uploadAdmission: true, dataPort: deps.dataPort?.() ?? 0 };
    }),

    RegisterDataset: unary(log, 'RegisterDataset', (req: RegisterDatasetRequest): RegisterDatasetResponse => {
      admit();
      checkId('node_id', req.nodeId);
      checkNodeIsCaller('node_id', req.nodeId, req);
      if (!/^[^\s:]+:\d{1,5}$/.test(req.address)) throw new InvalidFieldError('address', 'host:port', JSON.stringify(req.address));
      getTask(req.task);
      for (const s of req.shards) {
        checkId('shards.shard_id', s.shardId);
        if (!/^[0-9a-f]{64}$/.test(s.sha256)) throw new InvalidFieldError(`shards[${s.shardId}].sha256`, '64 hex digits', JSON.stringify(s.sha256));
        if (!(s.numSamples > 0)) throw new InvalidFieldError(`shards[${s.shardId}].num_samples`, 'a positive count', String(s.numSamples));
      }
      deps.datasets.set(req.nodeId, {
        nodeId: req.nodeId, address: req.address, task: req.task, lastSeenMs: Date.now(),
        shards: req.shards.map((s) => ({ shardId: s.shardId, numSamples: s.numSamples, sha256: s.sha256 })),
      });
      log.info('dataset node registered', { nodeId: req.nodeId, address: req.address, shards: req.shards.length });
      return { heartbeatIntervalMs: deps.heartbeatIntervalMs, leaseKey: deps.leaseKey };
    }),

    Heartbeat: unary(log, 'Heartbeat', (req: HeartbeatRequest): HeartbeatResponse => {
      checkId('node_id', req.nodeId);
      checkNodeIsCaller('node_id', req.nodeId, req);
      const ds = deps.datasets.get(req.nodeId);
      if (ds) {
        ds.lastSeenMs = Date.now();
        return { taskActive: false };
      }
      if (!registry.touch(req.nodeId)) throw new NodeNotFoundError(req.nodeId);
      const faults = req.shardFaults ?? [];
      if (faults.length > 1000) throw new InvalidFieldError('shard_faults', 'at most 1000 a heartbeat', String(faults.length));
      for (const f of faults) {
        // Only shards the node lists count; others (a node that left, say) are dropped.
        if (!deps.datasets.get(f.datasetNodeId)?.shards.some((s) => s.shardId === f.shardId)) continue;
        if (ledger.reportShardFault(f.datasetNodeId, f.shardId, req.nodeId)) {
          log.warn('trainer reports a shard that failed its checks', { trainer: req.nodeId, datasetNodeId: f.datasetNodeId, shardId: f.shardId, reason: f.reason.slice(0, 200) });
        } else {
          log.debug('shard fault report ignored: the trainer was never dealt that shard', { trainer: req.nodeId, datasetNodeId: f.datasetNodeId, shardId: f.shardId });
        }
      }
      if (faults.length > 0) jobs.release(req.nodeId, (s) => ledger.shardFailedFor(req.nodeId, s.datasetNodeId, s.shardId));
      // Its update in, a task stays active until its round closes: an answer that reaches the
      // trainer before its upload's own (another connection) must not stop a secure member that
      // still owes its group the signature and unmask answers.
      return { taskActive: jobs.isTaskInRound(req.taskId) };
    }),

    GetTask: unary(log, 'GetTask', async (req: GetTaskRequest, signal): Promise<GetTaskResponse> => {
      admit();
      checkId('node_id', req.nodeId);
      checkNodeIsCaller('node_id', req.nodeId, req);
      if (!registry.touch(req.nodeId)) throw new NodeNotFoundError(req.nodeId);
      const wait = Math.min(req.waitMs, MAX_TASK_WAIT_MS);
      const task = await jobs.waitForTask(req.nodeId, wait, signal);
      registry.touch(req.nodeId);
      if (task) return { result: 'task', task };
      const active = jobs.list().some((j) => ['RUNNING', 'PENDING'].includes(jobs.stateOf(j)));
      return { result: 'retryAfterMs', retryAfterMs: active ? 200 : 5_000 };
    }),

    FetchGlobalModel: serverStream<FetchGlobalModelRequest, BlobPart>(log, 'FetchGlobalModel', async (req, send, signal) => {
      admit();
      const { bytes, sha256 } = jobs.runner(req.jobId).globalModel(req.round);
      const messages = modelMessages(bytes, sha256);
      // A download cut off goes on where it stopped: the header, then the chunks it lacks.
      const chunks = messages.length - 1;
      if (req.fromChunk > chunks) throw new InvalidFieldError('from_chunk', `a chunk index from 0 to ${chunks} (the model is ${chunks} chunks)`, String(req.fromChunk));
      for (const message of [messages[0]!, ...messages.slice(1 + req.fromChunk)]) {
        if (signal.aborted) return;
        await send(message);
      }
      metrics.sentBytes.inc(Math.max(0, bytes.length - req.fromChunk * DEFAULT_CHUNK_BYTES));
    }),

    SubmitUpdate: clientStream<BlobPart<UpdateHeader>, SubmitUpdateResponse>(log, 'SubmitUpdate', async (messages, signal, call) => {
      let received: Buffer | null = null;
      let spooled: SpooledInput | null = null;
      let release = () => {};
      // Ends the stream early (idle too long, replaced by a newer upload): the loop below throws `err`.
      let stopped = false;
      const stop = (err: Error) => {
        if (stopped) return;
        stopped = true;
        call.destroy(err);
      };
      const idle = setTimeout(() => stop(new UploadIdleError(deps.uploads.idleMs)), deps.uploads.idleMs);
      try {
        admit();
        let assembler: BlobAssembler | null = null;
        let header: UpdateHeader | null = null;
        let job: ReturnType<JobManager['runner']> | null = null;
        for await (const msg of messages) {
          if (signal.aborted) break;
          idle.refresh();
          if (msg.part === 'header') {
            if (header) throw new InvalidFieldError('SubmitUpdateRequest', 'one header, then chunks', 'a second header');
            header = msg.header;
            checkId('header.node_id', header.nodeId);
            checkNodeIsCaller('header.node_id', header.nodeId, call);
            job = jobs.runner(header.jobId);
            if (!registry.touch(header.nodeId)) throw new NodeNotFoundError(header.nodeId);
            const round = job.current;
            if (!round || round.round !== header.round) throw new WrongRoundError(header.jobId, round?.round ?? null, header.round);
            // An upload taken whole whose answer was lost (a dropped connection) is sent again:
            // the same blob is answered as the first was, and not taken twice.
            if (header.blob && takenUploads.get(`${header.nodeId}/${header.taskId}`) === Buffer.from(header.blob.sha256).toString('hex')) {
              return { accepted: true, receivedUpdates: round.counts().reported };
            }
            const member = round.checkUpload(header.taskId, header.nodeId, header.numParams);
            const secure = job.secure;
            if (secure && !header.masked) throw new InvalidFieldError('masked', 'a masked input (secure aggregation is on)', 'a plaintext update');
            if (!secure && header.masked) throw new InvalidFieldError('masked', 'a plaintext update (secure aggregation is off)', 'a masked input');
            secure?.checkMaskedInput(header.nodeId);
            // The weight of a plaintext update: never more than the samples this task was dealt.
            const dealt = member.task.shards.reduce((n, x) => n + x.numSamples, 0);
            if (!Number.isSafeInteger(header.numSamples) || !(header.numSamples > 0) || header.numSamples > dealt) {
              throw new InvalidFieldError('num_samples', `a count from 1 to ${dealt} (the samples of the shards dealt to this task)`, String(header.numSamples));
            }
            if (!Number.isFinite(header.trainLoss)) throw new InvalidFieldError('train_loss', 'a finite number', String(header.trainLoss));
            if (!header.blob) throw new InvalidFieldError('blob', 'a blob header', 'none');
            const expectedBytes = (round.aggregate.length + (header.masked ? 1 : 0)) * 4;
            // Reserved before a byte is buffered; the size is the round's, not what the header claims.
            release = uploads.take(header.taskId, expectedBytes, stop);
            // A masked input is held apart (memory or a file) and folded once whole (spool.ts); a plaintext update goes into a pooled buffer.
            const file = header.masked ? (spooled = deps.uploads.spool.open(header.taskId, expectedBytes)) : null;
            // The data plane's thread hashed the chunks as they came: they are not read here again.
            const hashed = (call as Partial<{ digestOfChunks(): Buffer }>).digestOfChunks?.bind(call);
            assembler = new BlobAssembler(header.blob, {
              maxBytes: MAX_UPDATE_BYTES, expectedBytes, ...(hashed ? { digestOfChunks: hashed } : {}),
              ...(file ? { sink: (data: Buffer) => file.append(data) } : { allocate: (n: number) => (received = pool.acquire(n)) }),
            });
            // Admitted: the response headers tell the trainer to send its chunks (upload_admission).
            call.sendMetadata(new Metadata());
          } else {
            if (!assembler) throw new InvalidFieldError('SubmitUpdateRequest', 'a header first', 'a chunk');
            assembler.push(msg.chunk);
            metrics.receivedBytes.inc(msg.chunk.data.length);
          }
        }
        // A trainer that cancels (its round closed) ends the stream early: not a bad update.
        if (signal.aborted) return { accepted: false, receivedUpdates: job?.current?.counts().reported ?? 0 };
        if (!header || !assembler || !job) throw new InvalidFieldError('SubmitUpdateRequest', 'a header and chunks', 'an empty stream');
        const round = job.current;
        if (!round || round.round !== header.round) throw new WrongRoundError(header.jobId, round?.round ?? null, header.round);
        const info = { numSamples: header.numSamples, trainLoss: header.trainLoss, trainSeconds: header.trainSeconds };
        if (header.masked) {
          assembler.verify();
          const file = spooled!;
          // Its writes to a file, if it went to one, are done (a full disk fails the upload here).
          await file.flush();
          if (signal.aborted) return { accepted: false, receivedUpdates: round.counts().reported };
          const secure = job.secure;
          if (!secure) throw new InvalidFieldError('masked', 'a plaintext update (secure aggregation is off)', 'a masked input');
          if (job.current !== round) throw new WrongRoundError(header.jobId, job.current?.round ?? null, header.round);
          round.checkUpload(header.taskId, header.nodeId, header.numParams);
          if (deps.onUpdateBytes) deps.onUpdateBytes(header.taskId, file.readAll(), header.numSamples);
          // Into the group's running sum mod 2^32, in a mask thread: its chunks handed over if in
          // memory, else its file, read there. The input is let go in `finally`.
          secure.submitMaskedInput(header.nodeId, { length: file.bytes / 4, pieces: () => file.words(), chunks: () => file.takeChunks(), file: () => file.takeFile() });
          round.markReported(header.taskId, header.nodeId, info);
        } else {
          const bytes = assembler.finish();
          round.acceptUpdate(header.taskId, header.nodeId, bytesToFloat32(bytes), info);
          deps.onUpdateBytes?.(header.taskId, bytes, header.numSamples);
        }
        takenUploads.set(`${header.nodeId}/${header.taskId}`, Buffer.from(header.blob!.sha256).toString('hex'));
        metrics.updatesAccepted.inc({ job_id: header.jobId });
        const c = round.counts();
        log.info('update accepted', { nodeId: header.nodeId, round: header.round, samples: header.numSamples, loss: +header.trainLoss.toFixed(4) });
        return { accepted: true, receivedUpdates: c.reported };
      } catch (err) {
        if (signal.aborted) {
          log.info('upload cancelled by the trainer');
        } else {
          metrics.updatesRejected.inc({ reason: rejectReason(err) });
          // No room yet is flow control (the trainer sends again shortly), not a bad update: counted, not logged.
          if (!(err instanceof UploadBudgetError)) log.warn('update rejected', { error: (err as Error).message });
        }
        throw err;
      } finally {
        clearTimeout(idle);
        release();
        if (received) pool.release(received);
        void spooled?.remove();
      }
    }),

    GetScore: unary(log, 'GetScore', (req: { nodeId: string }): GetScoreResponse => {
      checkId('node_id', req.nodeId);
      const s = ledger.scoreboard.get(req.nodeId);
      if (!s) throw new NotScoredError(req.nodeId);
      return { nodeId: s.nodeId, role: s.role, score: s.score, quality: s.quality, reliability: s.reliability, groupsSeen: s.groupsSeen, onTime: s.onTime, uptime: s.uptime, throughput: s.throughput };
    }),

    SecAggSubmit: unary(log, 'SecAggSubmit', (req: SecAggSubmitRequest): Record<string, never> => {
      admit();
      checkId('node_id', req.nodeId);
      checkNodeIsCaller('node_id', req.nodeId, req);
      const secure = secureFor(req.nodeId, req.taskId);
      // A node retries a submission whose answer it did not get (a deadline, a dropped
      // connection): the same message again is answered as the first was; another is refused.
      const key = `${req.taskId}/${req.payload}`;
      const digest = sha256(coordinatorService.SecAggSubmit.requestSerialize(req)).toString('base64');
      if (submitted.get(key) === digest) return {};
      submitStage(secure, req);
      submitted.set(key, digest);
      return {};
    }),

    SecAggAwait: unary(log, 'SecAggAwait', async (req: SecAggAwaitRequest, signal): Promise<SecAggAwaitResponse> => {
      admit();
      if (req.stage !== 'SHARE_KEYS' && req.stage !== 'MASKED_INPUT' && req.stage !== 'CONSISTENCY' && req.stage !== 'UNMASK') {
        throw new InvalidFieldError('stage', 'SHARE_KEYS, MASKED_INPUT, CONSISTENCY or UNMASK', JSON.stringify(req.stage));
      }
      checkId('node_id', req.nodeId);
      checkNodeIsCaller('node_id', req.nodeId, req);
      const secure = secureFor(req.nodeId, req.taskId);
      const r = await secure.awaitInput(req.nodeId, req.stage, Math.min(req.waitMs, MAX_TASK_WAIT_MS), signal);
      registry.touch(req.nodeId);
      if (!r) return { result: 'retryAfterMs', retryAfterMs: 0 };
      switch (r.kind) {
        case 'advertisements': return { result: 'advertisements', advertisements: { advertisements: r.advertisements } };
        case 'shares': return { result: 'shares', shares: { shares: r.shares } };
        case 'survivors': return { result: 'survivors', survivors: r.set };
        case 'unmask': return { result: 'unmask', unmask: r.request };
        default: return { result: 'aborted', aborted: r.reason };
      }
    }),

    GetStatus: unary(log, 'GetStatus', (req: GetStatusRequest): GetStatusResponse => {
      const listed = req.jobId ? [jobs.get(req.jobId)] : jobs.list();
      return {
        jobs: listed.map((j) => ({
          jobId: j.config.jobId, task: j.config.task, state: jobs.stateOf(j), roundsTotal: j.config.rounds,
          roundsDone: jobs.historyOf(j).length, history: jobs.historyOf(j), phase: j.runner?.current?.phase ?? 'NONE',
        })),
        liveTrainers: registry.liveCount(),
        datasetNodes: deps.datasets.size,
        ...weightsStatusOf(deps.weightsStatus?.() ?? null),
      };
    }),
  };
}

/** Submissions and uploads a coordinator remembers, to answer a retried one as the first. */
const MAX_SUBMISSIONS_KEPT = 65_536;

/** Hands a SecAggSubmit message to its group. */
function submitStage(secure: SecureAggregation, req: SecAggSubmitRequest): void {
  switch (req.payload) {
    case 'advertisement': {
      const a = req.advertisement!;
      secure.submitAdvertisement(req.nodeId, { nodeId: a.nodeId, identityKey: a.identityKey, encKey: a.encKey, maskKey: a.maskKey, signature: a.signature, hotkeySignature: a.hotkeySignature });
      break;
    }
    case 'shares':
      secure.submitShares(req.nodeId, req.shares!.shares.map((x) => ({ from: x.from, to: x.to, ciphertext: x.ciphertext })));
      break;
    case 'consistency': {
      const c = req.consistency!;
      secure.submitConsistency(req.nodeId, { nodeId: c.nodeId, signature: c.signature, hotkeySignature: c.hotkeySignature });
      break;
    }
    case 'unmask':
      secure.submitUnmask(req.nodeId, req.unmask!.shares.map((x) => {
        if (x.kind !== 'self-seed' && x.kind !== 'mask-key') throw new InvalidFieldError('unmask.kind', 'self-seed or mask-key', JSON.stringify(x.kind));
        return { owner: x.owner, kind: x.kind, share: x.share, dealerSignature: x.dealerSignature };
      }));
      break;
    default:
      throw new InvalidFieldError('SecAggSubmitRequest.payload', 'an advertisement, shares, a survivor-set signature or unmask shares', 'nothing');
  }
}
