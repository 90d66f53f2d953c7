/**
 * The wire: the gRPC contract loaded from `proto/`, typed clients and server helpers, tensor
 * blobs in chunks (bytes, never `repeated float`), signed requests and their verification,
 * shard leases, TLS, and the one mapping of errors to gRPC status.
 */
export { BlobAssembler, bytesToFloat32, DEFAULT_CHUNK_BYTES, encodeBlob, float32ToBytes, MAX_CHUNK_BYTES, sha256 } from './blob.js';
export { BufferPool } from './buffer-pool.js';
export { preEncoded, framedBytes, alreadyFramed, CoordinatorClient, coordinatorService, DatasetClient, datasetService, JobsClient, jobsService, IdentityClient, identityService, type IdentityStub, type WhoResponse, type CoordinatorStub, type DatasetStub, type JobsStub, type CoordinatorHandlers, type DatasetHandlers, type JobsHandlers, type BlobChunk, type BlobPart, type FetchGlobalModelRequest, type GetJobResponse, type GetManifestResponse, type GetScoreResponse, type GetStatusRequest, type GetStatusResponse, type GetTaskRequest, type GetTaskResponse, type HeartbeatRequest, type HeartbeatResponse, type JobInfo, type ModelFileHeader, type RegisterDatasetRequest, type RegisterDatasetResponse, type RegisterTrainerRequest, type RegisterTrainerResponse, type RoundResult, type SecAggAwaitRequest, type SecAggAwaitResponse, type SecAggConfig, type SecAggSubmitRequest, type ShardFault, type ShardInfo, type ShardLease, type ShardRef, type StreamShardRequest, type SubmitUpdateResponse, type Task, type UpdateHeader } from './proto.js';
export { audienceOf, callClientStream, callServerStream, callUnary, receiveResumable, unanswered, untilAnswered, makeClient, whoIs, type CallOptions, type ClientStreamOptions, type ServerStream, type ClientStreamMethod, type RequestOf, type ResponseOf, type ServerStreamMethod, type UnaryMethod } from './client.js';
export { CallLimiter, callerOf, checkNodeIsCaller, deserializeWithDigest, HEADER_AUDIENCE, newSession, signerFromSecret, RequestVerifier, signedMetadata, signedService, sr25519Ready, verifySr25519, type Admission, type Signer, type SignOptions } from './auth.js';
export { checkLease, checkLeaseKey, leaseCryptoReady, signLease } from './lease.js';
export { checkTlsOptions, serverCredentials, useTlsForClients } from './tls.js';
export { clientStream, createGrpcServer, ensureCanListen, serveHealthAndReflection, serveIdentity, serverStream, unary, MAX_STREAMS_PER_CONNECTION, type Health } from './server.js';
export { StreamGuard, DEFAULT_STREAM_LIMITS, type StreamLimits } from './stream-guard.js';
export { hasStatus, toServiceError } from './status.js';
