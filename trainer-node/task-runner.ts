/**
 * Runs one task: fetch the round's global model (digest-checked), stream the assigned shards
 * from dataset nodes (each digest-checked, cached by digest), train locally, and upload
 * `local - global` as a chunk stream. Stops at the next batch when its signal aborts.
 */
import type * as tf from '@tensorflow/tfjs';
import { status } from '@grpc/grpc-js';
import { privatize } from '../src/privacy/index.js';
import { bytesToFloat32, encodeBlob, float32ToBytes, MAX_CHUNK_BYTES, callClientStream, hasStatus, callServerStream, receiveResumable, unanswered, makeClient, DatasetClient, type CoordinatorStub, type DatasetStub, type BlobPart, type ShardLease, type ShardFault, type ShardRef, type SubmitUpdateResponse, type Task, type UpdateHeader, type Signer, verifySr25519 } from '../src/wire/index.js';
import { BadShardError, DigestMismatchError } from '../src/errors.js';
import { modelFromTopology, clippedDelta, getFlatParams, setFlatParams, trainLocal, type Dataset, type TrainThreads } from '../src/model/index.js';
import { decodeShard, getTask } from '../src/tasks/index.js';
import { sleep, type Logger } from '../src/util/index.js';
import type { TrainerMetrics } from '../src/metrics/index.js';
import type { Identity } from '../src/crypto/index.js';
import { SecureSession } from './secure-session.js';
import { MaskPool, recycleWords, type HotkeyBinding, type UnmaskShare } from '../src/secagg/index.js';
import { decodeAddress } from '@polkadot/util-crypto';

/** An update ready to mask and send, and what made it. */
interface LocalUpdate {
  delta: Float32Array;
  /** Samples it was trained on. */
  count: number;
  loss: number;
  seconds: number;
  /** Differential privacy noised it: it weighs 1 in its group's sum. */
  dp: boolean;
  /** Its L2 norm before clipping. */
  norm: number;
  /** Training steps replayed from a recorded one (webgpu). */
  replayedSteps: number;
}

/** Longest a shard may be (bytes). */
const MAX_SHARD_BYTES = 1 << 30;
/** Streams a shard download may take (0.25 s, 0.5 s, 1 s apart) before a dataset node is given up on. */
const SHARD_ATTEMPTS = 4;

/** State a trainer keeps across tasks. */
export class TaskRunner {
  private readonly shardCache = new Map<string, Dataset>();
  /** Shards that failed their checks (digest or contents), not yet reported. */
  readonly shardFaults: ShardFault[] = [];
  /** Samples a second of the last local training (epochs counted), for the status page. */
  lastSamplesPerSecond = 0;
  private readonly datasetClients = new Map<string, DatasetStub>();
  private model: { topology: string; model: tf.LayersModel } | null = null;

  constructor(
    private readonly deps: {
      nodeId: string;
      coordinator: CoordinatorStub;
      /** Whether the coordinator admits an upload by its header before the chunks are sent (upload_admission). */
      uploadAdmission?: () => boolean;
      /** Where the model comes from and updates go: the coordinator's data plane once registration names it, else `coordinator`. */
      dataPlane?: () => CoordinatorStub;
      metrics: TrainerMetrics;
      log: Logger;
      delayPerBatchMs: number;
      identity: Identity;
      /** Signs requests to dataset nodes (null: unsigned). */
      signer?: Signer | null;
      /** Sees each quantized input before it is masked (tests of what the coordinator learns). */
      onQuantized?: (taskId: string, q: Uint32Array) => void;
      /** Whether a secure-group peer is admitted (the subnet's metagraph, a peer allowlist); absent: any hotkey. */
      admitPeer?: (peer: string) => boolean;
      /** Replaces the update before it is sent (tests plant free-riders and attackers with it). */
      plantUpdate?: (delta: Float32Array) => Float32Array;
      /** Edits the masked input before it is sent (tests plant members that cheat inside a group). */
      plantMasked?: (y: Uint32Array) => void;
      plantReveals?: (reveals: UnmaskShare[]) => void;
      /** Makes each update instead of training (bench:scale's simulated trainers): no model, no shards. */
      syntheticUpdate?: (numParams: number) => Float32Array;
      /** Threads that share training batches on a CPU backend (one pool for the process); absent: this thread alone. */
      trainThreads?: TrainThreads;
      /** A mask thread pool shared by many runners in one process (bench:scale); by default each has its own. */
      maskPool?: MaskPool;
    },
  ) {
    this.maskPool = deps.maskPool ?? new MaskPool();
  }

  private readonly maskPool: MaskPool;

  /**
   * With a hotkey, round keys are signed by it and peers' are checked against theirs (and, when
   * the trainer knows the subnet's hotkeys, against those): the coordinator cannot swap keys.
   */
  private hotkeyBinding(): HotkeyBinding | undefined {
    const signer = this.deps.signer;
    if (!signer) return undefined;
    const admitted = this.deps.admitPeer;
    return {
      sign: (m) => signer.sign(m),
      verify: (peer, m, sig) => {
        let key: Uint8Array;
        try {
          key = decodeAddress(peer);
        } catch {
          return false;
        }
        return verifySr25519(m, sig, key);
      },
      ...(admitted ? { admitted } : {}),
    };
  }

  /** Closes the dataset channels and the mask threads. */
  close(): void {
    if (!this.deps.maskPool) void this.maskPool.close();
    for (const c of this.datasetClients.values()) c.close();
    this.datasetClients.clear();
  }

  private datasetClient(address: string): DatasetStub {
    let c = this.datasetClients.get(address);
    if (!c) {
      c = makeClient(DatasetClient, address, undefined, this.deps.signer);
      this.datasetClients.set(address, c);
    }
    return c;
  }

  private async fetchShard(ref: ShardRef, taskName: string, lease: ShardLease | undefined, signal: AbortSignal): Promise<{ count: number; features: Float32Array; labels: Uint8Array }> {
    const cached = this.shardCache.get(ref.sha256);
    if (cached) return cached;
    // A download cut off (a deadline passed, the connection dropped) goes on from the chunk it
    // lacks, a few times ({@link SHARD_ATTEMPTS}): a dataset node that stays down fails the task.
    const bytes = await receiveResumable(
      (fromChunk) => callServerStream(this.datasetClient(ref.datasetAddress), 'StreamShard', { shardId: ref.shardId, lease: lease ?? null, fromChunk }, { timeoutMs: 60_000, signal }),
      { maxBytes: MAX_SHARD_BYTES, expectedSha256: ref.sha256 }, signal, SHARD_ATTEMPTS,
    );
    this.deps.metrics.receivedBytes.inc(bytes.length);
    const entry = readShard(bytes, ref, taskName);
    this.shardCache.set(ref.sha256, entry);
    return entry;
  }

  private async loadShards(task: Task, signal: AbortSignal): Promise<Dataset> {
    const parts: Dataset[] = [];
    // A few shards at a time: enough to overlap round trips, few enough to bound memory.
    const queue = [...task.shards];
    const failed: string[] = [];
    const workers = Array.from({ length: Math.min(4, queue.length) }, async () => {
      for (let ref = queue.shift(); ref; ref = queue.shift()) {
        try {
          parts.push(await this.fetchShard(ref, task.task, task.leases?.find((l) => l.datasetNodeId === ref.datasetNodeId), signal));
        } catch (err) {
          // A shard that is not what its dataset node listed (its digest, or its contents) is
          // reported and left out; the rest still train. Fetching it again would not change it.
          if (!(err instanceof DigestMismatchError || err instanceof BadShardError)) throw err;
          this.shardFaults.push({ datasetNodeId: ref.datasetNodeId, shardId: ref.shardId, reason: err.message });
          this.deps.log.warn('shard failed its checks; training without it', { shardId: ref.shardId, datasetNodeId: ref.datasetNodeId, error: err.message });
          failed.push(ref.shardId);
        }
      }
    });
    await Promise.all(workers);
    if (parts.length === 0) throw new Error(`every shard of the task failed its checks (${failed.join(', ')})`);
    const count = parts.reduce((n, p) => n + p.count, 0);
    const dim = count > 0 ? parts[0]!.features.length / parts[0]!.count : 0;
    const features = new Float32Array(count * dim);
    const labels = new Uint8Array(count);
    const kpPer = count > 0 && parts[0]!.keypoints ? parts[0]!.keypoints.length / parts[0]!.count : 0;
    const keypoints = kpPer > 0 ? new Float32Array(count * kpPer) : undefined;
    let off = 0;
    for (const p of parts) {
      features.set(p.features, off * dim);
      labels.set(p.labels, off);
      if (keypoints) keypoints.set(p.keypoints!, off * kpPer);
      off += p.count;
    }
    return { count, features, labels, keypoints };
  }

  /**
   * The round's global parameters from the coordinator, digest-checked; a download cut off
   * (its deadline passed, the connection dropped) goes on from the first chunk it lacks.
   */
  private async fetchGlobal(task: Task, signal: AbortSignal): Promise<Float32Array> {
    const ref = task.model!;
    // From the data plane; from the coordinator's own server after two tries (as for uploads).
    let tries = 0;
    const from = () => (tries++ < 2 ? this.deps.dataPlane?.() ?? this.deps.coordinator : this.deps.coordinator);
    const bytes = await receiveResumable(
      (fromChunk) => callServerStream(from(), 'FetchGlobalModel', { jobId: task.jobId, round: task.round, fromChunk }, { timeoutMs: 60_000, signal }),
      { maxBytes: ref.numParams * 4, expectedBytes: ref.numParams * 4, expectedSha256: ref.paramsSha256 }, signal,
    );
    this.deps.metrics.receivedBytes.inc(bytes.length);
    return new Float32Array(bytesToFloat32(bytes));
  }

  private async loadModel(task: Task, signal: AbortSignal): Promise<{ model: tf.LayersModel; global: Float32Array }> {
    const ref = task.model!;
    const global = await this.fetchGlobal(task, signal);
    if (this.model?.topology !== ref.topologyJson) {
      this.model?.model.dispose();
      this.model = { topology: ref.topologyJson, model: await modelFromTopology(ref.topologyJson) };
    }
    setFlatParams(this.model.model, global);
    return { model: this.model.model, global };
  }

  /**
   * Runs `task` to its upload (and, under secure aggregation, its unmask answer); throws if
   * aborted or refused. `onSubmitted` runs once the update is accepted.
   */
  async run(task: Task, signal: AbortSignal, onSubmitted?: () => void, unmaskSignal: AbortSignal = signal): Promise<SubmitUpdateResponse> {
    const { log, metrics } = this.deps;
    const train = task.train!;
    const secure = task.secagg ? new SecureSession(this.deps.coordinator, this.deps.nodeId, task, this.deps.identity, this.hotkeyBinding(), this.deps.plantReveals) : null;
    // The key stages run while the model and shards load and training runs.
    const keysReady = secure?.prepare(signal);
    keysReady?.catch(() => {});
    const trained = this.deps.syntheticUpdate ? await this.syntheticUpdate(task, signal) : await this.train(task, signal);
    const { delta, count, loss, seconds, dp } = trained;
    let payload: Buffer = float32ToBytes(delta);
    /** The masked input, in shared memory: given back once sent (V8 would not collect it soon). */
    let masked: Uint32Array | null = null;
    if (secure) {
      await keysReady;
      // Large models are masked in threads; small ones inline (the pool decides).
      const y = await secure.node.maskInputAsync(delta, dp ? 1 : count, this.maskPool, { onQuantized: (q) => this.deps.onQuantized?.(task.taskId, q) });
      this.deps.plantMasked?.(y);
      payload = Buffer.from(y.buffer, y.byteOffset, y.byteLength);
      masked = y;
    }
    const { header: blob, chunks } = encodeBlob(payload, MAX_CHUNK_BYTES);
    const header: UpdateHeader = {
      nodeId: this.deps.nodeId, taskId: task.taskId, jobId: task.jobId, round: task.round, numSamples: count,
      trainLoss: loss, numParams: delta.length, blob, trainSeconds: seconds, masked: secure !== null,
    };
    if (seconds > 0) this.lastSamplesPerSecond = (count * train.localEpochs) / seconds;
    log.info('trained', { round: task.round, samples: count, loss: +loss.toFixed(4), seconds: +seconds.toFixed(2), updateNorm: +trained.norm.toFixed(3), replayedSteps: trained.replayedSteps });
    const messages: BlobPart<UpdateHeader>[] = [{ part: 'header', header }, ...chunks.map((chunk) => ({ part: 'chunk' as const, chunk }))];
    let res: SubmitUpdateResponse;
    try {
      res = await this.submit(messages, signal);
    } finally {
      // Every message was encoded (copied) by the time the upload ended, answered or not.
      if (masked) recycleWords(masked);
    }
    metrics.sentBytes.inc(blob.totalBytes);
    onSubmitted?.();
    if (secure) await secure.unmask(unmaskSignal);
    return res;
  }

  /** Loads the model and shards, trains, and returns the clipped (and, with DP, noised) update. */
  private async train(task: Task, signal: AbortSignal): Promise<LocalUpdate> {
    const { metrics } = this.deps;
    const train = task.train!;
    const [{ model, global }, data] = await Promise.all([this.loadModel(task, signal), this.loadShards(task, signal)]);
    const def = getTask(task.task);
    const delay = this.deps.delayPerBatchMs;
    const result = await trainLocal(model, data, {
      epochs: train.localEpochs, batchSize: train.batchSize, learningRate: train.learningRate,
      optimizer: train.optimizer === 'sgd' ? 'sgd' : 'adam', head: def.head, seed: train.seed, signal,
      onProgress: delay > 0 ? () => sleep(delay, signal) : undefined,
      ...(this.deps.trainThreads ? { parallel: { threads: this.deps.trainThreads, topology: task.model!.topologyJson } } : {}),
    });
    metrics.samplesTrained.inc(result.samplesTrained);
    metrics.trainSeconds.observe(result.seconds);
    if (signal.aborted) throw signal.reason ?? new Error('aborted');
    const clipped = clippedDelta(await getFlatParams(model), global, train.clipNorm);
    const { norm } = clipped;
    const delta = this.deps.plantUpdate ? this.deps.plantUpdate(clipped.delta) : clipped.delta;
    // Differential privacy: this member's share of its group's noise; every update weighs 1.
    const dp = train.dpNoiseMultiplier > 0 && task.secagg && train.clipNorm > 0;
    if (dp) privatize(delta, { clip: train.clipNorm, noiseMultiplier: train.dpNoiseMultiplier, members: task.secagg!.members.length });
    return { delta, count: data.count, loss: result.loss, seconds: result.seconds, dp: Boolean(dp), norm, replayedSteps: result.replayedSteps };
  }

  /**
   * An update made up rather than trained (load benchmarks, where training is not what is
   * measured); the global model is still fetched, as the coordinator serves it to every trainer.
   */
  private async syntheticUpdate(task: Task, signal: AbortSignal): Promise<LocalUpdate> {
    await this.fetchGlobal(task, signal);
    // As many samples as the shards dealt hold (the coordinator checks the count).
    const count = task.shards.reduce((n, s) => n + s.numSamples, 0);
    return { delta: this.deps.syntheticUpdate!(task.model!.numParams), count, loss: 0, seconds: 0, dp: false, norm: 0, replayedSteps: 0 };
  }

  /**
   * Sends an update; a coordinator whose upload budget is full (RESOURCE_EXHAUSTED before a byte
   * is buffered), or an upload whose answer did not come (a deadline passed, the connection
   * dropped: the coordinator keeps no part of an upload that did not end, and answers one it took
   * whole, sent again, as it did the first time) is tried again after a growing, jittered pause
   * until the round ends.
   */
  private async submit(messages: BlobPart<UpdateHeader>[], signal: AbortSignal): Promise<SubmitUpdateResponse> {
    // Uploads the data plane left unanswered (a firewall that lets only the main port through,
    // say): after two, the coordinator's own server takes them. Refusals for room do not count.
    let unansweredByDataPlane = 0;
    for (let attempt = 0; ; attempt++) {
      const dataPlane = unansweredByDataPlane < 2 ? this.deps.dataPlane?.() : undefined;
      try {
        const to = dataPlane ?? this.deps.coordinator;
        return await callClientStream(to, 'SubmitUpdate', messages, { timeoutMs: 120_000, signal, awaitAdmission: this.deps.uploadAdmission?.() ?? false });
      } catch (err) {
        const full = hasStatus(err, status.RESOURCE_EXHAUSTED) && /updates in flight hold/.test(err.details);
        const cutOff = unanswered(err, signal);
        if (!(full || cutOff) || signal.aborted || attempt >= 20) throw err;
        if (cutOff && dataPlane && dataPlane !== this.deps.coordinator) unansweredByDataPlane++;
        const ms = Math.min(4000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
        this.deps.log.info(full ? 'upload budget full; retrying' : 'upload cut off; retrying', { inMs: Math.round(ms), attempt: attempt + 1, error: (err as Error).message });
        await sleep(ms, signal);
      }
    }
  }
}

/**
 * A downloaded shard's samples as model inputs, checked against what its dataset node listed
 * and the task: a file that does not decode, or holds another task's samples, another shape,
 * another sample count or labels past the task's classes, is a {@link BadShardError}.
 */
function readShard(bytes: Uint8Array, ref: ShardRef, taskName: string): Dataset {
  const task = getTask(taskName);
  try {
    const { header, samples } = decodeShard(bytes);
    const check = (field: string, expected: unknown, got: unknown) => {
      if (JSON.stringify(expected) !== JSON.stringify(got)) throw new Error(`${field}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    };
    check('task', taskName, header.task);
    check('keypoints', task.keypoints, header.keypoints ?? 0);
    check('sample shape', task.sampleShape, header.sampleShape);
    check('classes', task.classes.length, header.numClasses);
    check('samples (as listed)', ref.numSamples, samples.count);
    return { count: samples.count, features: task.features(samples.x, samples.count), labels: samples.y, keypoints: samples.keypoints };
  } catch (err) {
    throw new BadShardError(ref.shardId, (err as Error).message);
  }
}

