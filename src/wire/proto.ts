/**
 * Loads the wire contract (`proto/actiquest/v1`) once and exposes its typed service definitions
 * and clients, and the TypeScript shapes of its messages. The shapes are generated from the
 * `.proto` files by proto-loader-gen-types (`scripts/gen-proto.mjs`, into `generated/`, not
 * committed) with the loader options below: camelCase, 64-bit integers as numbers, defaults
 * filled, `bytes` as Buffer, and each oneof's member named in a field of the oneof's name. A
 * message as received is `X__Output` (every field present); one being sent is `X` (every field
 * optional). The names exported here are the received shapes, which the code builds too.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { loadPackageDefinition } from '@grpc/grpc-js';
import type { ProtoGrpcType as CoordinatorProto } from './generated/coordinator.js';
import type { ProtoGrpcType as DatasetProto } from './generated/dataset.js';
import type { ProtoGrpcType as JobsProto } from './generated/jobs.js';
import type { ProtoGrpcType as IdentityProto } from './generated/identity.js';

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');

const definition = protoLoader.loadSync(
  ['actiquest/v1/coordinator.proto', 'actiquest/v1/jobs.proto', 'actiquest/v1/dataset.proto', 'actiquest/v1/types.proto', 'actiquest/v1/secagg.proto', 'actiquest/v1/identity.proto'],
  { includeDirs: [PROTO_ROOT], keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true },
);
/** The loaded contract, for server reflection (`grpc.reflection.v1` and `v1alpha`). */
export const packageDefinition = definition;
const pkg = (loadPackageDefinition(definition) as unknown as CoordinatorProto & DatasetProto & JobsProto & IdentityProto).actiquest.v1;

const FRAMED = Symbol('actiquest.framed');
/**
 * A response message already serialized (by its method's `responseSerialize`): servers send its
 * bytes as they are. A message sent to many callers, such as a chunk of the round's model that
 * every trainer downloads, is then encoded once rather than once per caller, and framed once:
 * its bytes are kept behind gRPC's 5-byte message prefix, and the server writes that very
 * buffer to each caller's stream (see {@link framesPreEncoded}).
 */
export function preEncoded<T>(bytes: Buffer): T {
  // Shared memory: a thread that serves the message (the coordinator's data plane) is handed
  // these bytes, not a copy of them.
  const framed = Buffer.from(new SharedArrayBuffer(bytes.length + 5));
  framed.writeUInt8(0, 0); // not compressed
  framed.writeUInt32BE(bytes.length, 1);
  bytes.copy(framed, 5);
  return { [FRAMED]: framed } as T;
}
const framedOf = (msg: unknown): Buffer | undefined => (msg as { [FRAMED]?: Buffer } | null)?.[FRAMED];

/** The framed bytes of a message made by {@link preEncoded} (undefined for any other). */
export function framedBytes(msg: unknown): Buffer | undefined {
  return framedOf(msg);
}

/** A message whose framed bytes {@link framedBytes} gave (in another thread): sent as they are. */
export function alreadyFramed<T>(framed: Uint8Array): T {
  return { [FRAMED]: Buffer.from(framed.buffer, framed.byteOffset, framed.byteLength) } as T;
}
for (const service of [pkg.Coordinator, pkg.Jobs, pkg.Dataset, pkg.Identity]) {
  for (const method of Object.values(service.service)) {
    const serialize = method.responseSerialize;
    method.responseSerialize = (msg: unknown) => framedOf(msg)?.subarray(5) ?? serialize(msg);
  }
}

/**
 * grpc-js frames each response into a fresh buffer (`serializeMessage`: the 5-byte prefix, then
 * a copy of the serialized message). For a pre-encoded message the framed buffer is ready, and
 * one buffer serves every stream it is written to: a thousand trainers downloading a 4 MB model
 * cost no copies and no fresh memory (4 GB of each a round, and the garbage collection of it).
 * The hook is on grpc-js's own class (its build/src/server-interceptors.js, one module instance
 * with the package's entry); every other message is framed by grpc-js as before. False when
 * that class no longer has the method (a grpc-js that changed): the copy is made then, and
 * `framing.test.ts` fails.
 */
export const framesPreEncoded: boolean = (() => {
  const internals = createRequire(import.meta.url)('@grpc/grpc-js/build/src/server-interceptors.js') as {
    BaseServerInterceptingCall?: { prototype: { serializeMessage?: (value: unknown) => Buffer } };
  };
  const proto = internals.BaseServerInterceptingCall?.prototype;
  const original = proto?.serializeMessage;
  if (!proto || typeof original !== 'function') return false;
  proto.serializeMessage = function serializeMessage(this: unknown, value: unknown): Buffer {
    return framedOf(value) ?? original.call(this, value);
  };
  return true;
})();

/** Client constructor and service definition of `actiquest.v1.Coordinator`. */
export const CoordinatorClient = pkg.Coordinator;
export const coordinatorService = CoordinatorClient.service;
/** Client constructor and service definition of `actiquest.v1.Jobs`. */
export const JobsClient = pkg.Jobs;
export const jobsService = JobsClient.service;
/** Client constructor and service definition of `actiquest.v1.Dataset`. */
export const DatasetClient = pkg.Dataset;
export const datasetService = DatasetClient.service;
/** Client constructor and service definition of `actiquest.v1.Identity`. */
export const IdentityClient = pkg.Identity;
export const identityService = IdentityClient.service;

/* ---- message shapes, as received (see the .proto files for what each field means) ---- */

export type { BlobHeader__Output as BlobHeader } from './generated/actiquest/v1/BlobHeader.js';
export type { BlobChunk__Output as BlobChunk } from './generated/actiquest/v1/BlobChunk.js';
export type { TrainerCapacity__Output as TrainerCapacity } from './generated/actiquest/v1/TrainerCapacity.js';
export type { TrainConfig__Output as TrainConfig } from './generated/actiquest/v1/TrainConfig.js';
export type { ShardRef__Output as ShardRef } from './generated/actiquest/v1/ShardRef.js';
export type { ModelRef__Output as ModelRef } from './generated/actiquest/v1/ModelRef.js';
export type { ShardInfo__Output as ShardInfo } from './generated/actiquest/v1/ShardInfo.js';
export type { RegisterTrainerRequest__Output as RegisterTrainerRequest } from './generated/actiquest/v1/RegisterTrainerRequest.js';
export type { RegisterTrainerResponse__Output as RegisterTrainerResponse } from './generated/actiquest/v1/RegisterTrainerResponse.js';
export type { RegisterDatasetRequest__Output as RegisterDatasetRequest } from './generated/actiquest/v1/RegisterDatasetRequest.js';
export type { RegisterDatasetResponse__Output as RegisterDatasetResponse } from './generated/actiquest/v1/RegisterDatasetResponse.js';
export type { ShardLease__Output as ShardLease } from './generated/actiquest/v1/ShardLease.js';
export type { ShardFault__Output as ShardFault } from './generated/actiquest/v1/ShardFault.js';
export type { HeartbeatRequest__Output as HeartbeatRequest } from './generated/actiquest/v1/HeartbeatRequest.js';
export type { HeartbeatResponse__Output as HeartbeatResponse } from './generated/actiquest/v1/HeartbeatResponse.js';
export type { GetTaskRequest__Output as GetTaskRequest } from './generated/actiquest/v1/GetTaskRequest.js';
export type { Task__Output as Task } from './generated/actiquest/v1/Task.js';
export type { GetTaskResponse__Output as GetTaskResponse } from './generated/actiquest/v1/GetTaskResponse.js';
export type { FetchGlobalModelRequest__Output as FetchGlobalModelRequest } from './generated/actiquest/v1/FetchGlobalModelRequest.js';
export type { UpdateHeader__Output as UpdateHeader } from './generated/actiquest/v1/UpdateHeader.js';
export type { SubmitUpdateResponse__Output as SubmitUpdateResponse } from './generated/actiquest/v1/SubmitUpdateResponse.js';
export type { GetStatusRequest__Output as GetStatusRequest } from './generated/actiquest/v1/GetStatusRequest.js';
export type { RoundResult__Output as RoundResult } from './generated/actiquest/v1/RoundResult.js';
export type { JobStatus__Output as JobStatus } from './generated/actiquest/v1/JobStatus.js';
export type { GetStatusResponse__Output as GetStatusResponse } from './generated/actiquest/v1/GetStatusResponse.js';
export type { GetManifestResponse__Output as GetManifestResponse } from './generated/actiquest/v1/GetManifestResponse.js';
export type { StreamShardRequest__Output as StreamShardRequest } from './generated/actiquest/v1/StreamShardRequest.js';
export type { SecAggConfig__Output as SecAggConfig } from './generated/actiquest/v1/SecAggConfig.js';
export type { SecAggSubmitRequest__Output as SecAggSubmitRequest } from './generated/actiquest/v1/SecAggSubmitRequest.js';
export type { SecAggAwaitRequest__Output as SecAggAwaitRequest } from './generated/actiquest/v1/SecAggAwaitRequest.js';
export type { SecAggAwaitResponse__Output as SecAggAwaitResponse } from './generated/actiquest/v1/SecAggAwaitResponse.js';
export type { GetScoreResponse__Output as GetScoreResponse } from './generated/actiquest/v1/GetScoreResponse.js';
export type { JobInfo__Output as JobInfo } from './generated/actiquest/v1/JobInfo.js';
export type { GetJobResponse__Output as GetJobResponse } from './generated/actiquest/v1/GetJobResponse.js';
export type { ModelFileHeader__Output as ModelFileHeader } from './generated/actiquest/v1/ModelFileHeader.js';
export type { KeyAdvertisement__Output as KeyAdvertisementMsg } from './generated/actiquest/v1/KeyAdvertisement.js';
export type { EncryptedShare__Output as EncryptedShareMsg } from './generated/actiquest/v1/EncryptedShare.js';
export type { UnmaskShare__Output as UnmaskShareMsg } from './generated/actiquest/v1/UnmaskShare.js';
export type { WhoResponse__Output as WhoResponse } from './generated/actiquest/v1/WhoResponse.js';

/** The generated clients of the services (their methods typed by the .proto files). */
export type { CoordinatorClient as CoordinatorStub } from './generated/actiquest/v1/Coordinator.js';
export type { DatasetClient as DatasetStub } from './generated/actiquest/v1/Dataset.js';
export type { JobsClient as JobsStub } from './generated/actiquest/v1/Jobs.js';
export type { IdentityClient as IdentityStub } from './generated/actiquest/v1/Identity.js';

/** A stream message that is either a blob's header or one of its chunks (`part` names which). */
export type BlobPart<H = BlobHeaderShape> =
  | { part: 'header'; header: H; chunk?: null }
  | { part: 'chunk'; chunk: BlobChunkShape; header?: null };
type BlobHeaderShape = import('./generated/actiquest/v1/BlobHeader.js').BlobHeader__Output;
type BlobChunkShape = import('./generated/actiquest/v1/BlobChunk.js').BlobChunk__Output;

/** What a server of each service implements, one handler a method, typed by the .proto files. */
export type { CoordinatorHandlers } from './generated/actiquest/v1/Coordinator.js';
export type { DatasetHandlers } from './generated/actiquest/v1/Dataset.js';
export type { JobsHandlers } from './generated/actiquest/v1/Jobs.js';
export type { IdentityHandlers } from './generated/actiquest/v1/Identity.js';
