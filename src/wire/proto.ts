/**
 * Loads the wire contract (`proto/actiquest/v1`) once and exposes the service definitions and
 * the TypeScript shapes of its messages (camelCase, 64-bit integers as numbers, defaults filled,
 * `bytes` as Buffer).
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');

const definition = protoLoader.loadSync(
  ['actiquest/v1/coordinator.proto', 'actiquest/v1/jobs.proto', 'actiquest/v1/dataset.proto', 'actiquest/v1/types.proto', 'actiquest/v1/secagg.proto'],
  { includeDirs: [PROTO_ROOT], keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true },
);
const pkg = (loadPackageDefinition(definition).actiquest as GrpcObject).v1 as GrpcObject;

/** Client constructor and service definition of `actiquest.v1.Coordinator`. */
export const CoordinatorClient = pkg.Coordinator as ServiceClientConstructor;
export const coordinatorService: ServiceDefinition = CoordinatorClient.service;
/** Client constructor and service definition of `actiquest.v1.Jobs`. */
export const JobsClient = pkg.Jobs as ServiceClientConstructor;
export const jobsService: ServiceDefinition = JobsClient.service;
/** Client constructor and service definition of `actiquest.v1.Dataset`. */
export const DatasetClient = pkg.Dataset as ServiceClientConstructor;
export const datasetService: ServiceDefinition = DatasetClient.service;

/* ---- message shapes (see the .proto files for what each field means) ---- */

export interface BlobHeader { totalBytes: number; sha256: Buffer; chunkCount: number }
export interface BlobChunk { index: number; data: Buffer }
/** A stream message that is either a header or a chunk (`part` names which). */
export type BlobPart<H = BlobHeader> =
  | { part: 'header'; header: H; chunk?: null }
  | { part: 'chunk'; chunk: BlobChunk; header?: null };

export interface TrainerCapacity { samplesPerSecond: number; backend: string; device: string }
export interface TrainConfig {
  localEpochs: number; batchSize: number; learningRate: number; optimizer: string;
  clipNorm: number; seed: number;
}
export interface ShardRef {
  datasetAddress: string; datasetNodeId: string; shardId: string; numSamples: number; sha256: string;
}
export interface ModelRef { topologyJson: string; numParams: number; paramsSha256: string }
export interface ShardInfo { shardId: string; numSamples: number; sha256: string; sizeBytes: number }

export interface RegisterTrainerRequest { nodeId: string; capacity: TrainerCapacity | null; version: string; identityKey: Buffer }
export interface RegisterTrainerResponse { nodeId: string; heartbeatIntervalMs: number; maxChunkBytes: number }
export interface RegisterDatasetRequest { nodeId: string; address: string; task: string; shards: ShardInfo[] }
export interface RegisterDatasetResponse { heartbeatIntervalMs: number; leaseKey: string }
export interface ShardLease { datasetNodeId: string; trainer: string; shardIds: string[]; expiresUnixMs: number; coordinator: string; signature: Buffer }
export interface ShardFault { datasetNodeId: string; shardId: string; reason: string }
export interface HeartbeatRequest { nodeId: string; taskId: string; shardFaults?: ShardFault[] }
export interface HeartbeatResponse { taskActive: boolean }
export interface GetTaskRequest { nodeId: string; waitMs: number }
export interface Task {
  taskId: string; jobId: string; round: number; task: string; model: ModelRef | null;
  train: TrainConfig | null; shards: ShardRef[]; deadlineUnixMs: number; secagg?: SecAggConfig | null;
  leases?: ShardLease[];
}
export type GetTaskResponse =
  | { result: 'task'; task: Task; retryAfterMs?: number }
  | { result: 'retryAfterMs'; retryAfterMs: number; task?: null };
export interface FetchGlobalModelRequest { jobId: string; round: number }
export interface UpdateHeader {
  nodeId: string; taskId: string; jobId: string; round: number; numSamples: number;
  trainLoss: number; numParams: number; blob: BlobHeader | null; trainSeconds: number; masked?: boolean;
}
export interface SubmitUpdateResponse { accepted: boolean; receivedUpdates: number }
export interface GetStatusRequest { jobId: string }
export interface RoundResult {
  round: number; participants: number; cohort: number; samples: number; trainLoss: number;
  valLoss: number; valAccuracy: number; durationSeconds: number; attempt: number; endedBy: string;
  groups: number; groupsFailed: number;
}
export interface JobStatus {
  jobId: string; task: string; state: string; roundsTotal: number; roundsDone: number;
  history: RoundResult[]; phase: string;
}
export interface GetStatusResponse { jobs: JobStatus[]; liveTrainers: number; datasetNodes: number }
export interface GetManifestResponse { nodeId: string; task: string; shards: ShardInfo[] }
export interface StreamShardRequest { shardId: string; lease?: ShardLease | null }

export interface SecAggConfig {
  roundId: string; groupId: string; members: string[]; identityKeys: Buffer[]; neighbours: number; threshold: number;
  clipRange: number; quantBits: number; vectorLength: number; maxWeight: number; seed: Buffer;
}
export interface KeyAdvertisementMsg { nodeId: string; identityKey: Buffer; encKey: Buffer; maskKey: Buffer; signature: Buffer }
export interface EncryptedShareMsg { from: string; to: string; ciphertext: Buffer }
export interface UnmaskShareMsg { owner: string; kind: string; share: Buffer }
export type SecAggSubmitRequest = { nodeId: string; taskId: string } & (
  | { payload: 'advertisement'; advertisement: KeyAdvertisementMsg }
  | { payload: 'shares'; shares: { shares: EncryptedShareMsg[] } }
  | { payload: 'unmask'; unmask: { shares: UnmaskShareMsg[] } }
  | { payload?: undefined }
);
export interface SecAggAwaitRequest { nodeId: string; taskId: string; stage: string; waitMs: number }
export type SecAggAwaitResponse =
  | { result: 'advertisements'; advertisements: { advertisements: KeyAdvertisementMsg[] } }
  | { result: 'shares'; shares: { shares: EncryptedShareMsg[] } }
  | { result: 'unmask'; unmask: { survivors: string[]; dropped: string[] } }
  | { result: 'retryAfterMs'; retryAfterMs: number }
  | { result: 'aborted'; aborted: string };
export interface GetScoreResponse { nodeId: string; role: string; score: number; quality: number; reliability: number; groupsSeen: number; onTime: number; uptime: number; throughput: number }

export interface JobInfo {
  jobId: string; task: string; state: string; priority: number; taskWeight: number; roundsTotal: number; roundsDone: number;
  phase: string; description: string; parameters: number; flops: number; metric: string; metricValue: number;
  submittedUnixMs: number; submittedBy: string; builtin: boolean; trainers: number;
}
export interface GetJobResponse { job: JobInfo; history: RoundResult[]; configJson: string }
export interface ModelFileHeader { name: string; blob: BlobHeader }
