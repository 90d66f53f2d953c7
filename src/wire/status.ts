/**
 * The one error policy of every gRPC server here (after nice-grpc's
 * `createErrorStatusObject`): handlers throw domain errors; an `ActiquestError` becomes the
 * status its `kind` names with its message; anything else becomes UNKNOWN with a generic
 * message, and its stack goes to the log only.
 */
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { ActiquestError, type ErrorKind } from '../errors.js';
import type { Logger } from '../util/index.js';

const STATUS_OF_KIND: Readonly<Record<ErrorKind, status>> = Object.freeze({
  'invalid-argument': status.INVALID_ARGUMENT,
  'failed-precondition': status.FAILED_PRECONDITION,
  'not-found': status.NOT_FOUND,
  'already-exists': status.ALREADY_EXISTS,
  unauthenticated: status.UNAUTHENTICATED,
  'permission-denied': status.PERMISSION_DENIED,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
  'deadline-exceeded': status.DEADLINE_EXCEEDED,
  unavailable: status.UNAVAILABLE,
});

/**
 * The longest status message sent: it travels in a trailer, and C-core clients (Python, C++)
 * refuse headers over 8 KiB with RESOURCE_EXHAUSTED in place of the status.
 */
export const MAX_DETAILS_CHARS = 1024;

/** Turns anything a handler threw into the status object grpc-js sends. */
export function toServiceError(err: unknown, log: Logger, method: string): Partial<ServiceError> {
  if (err instanceof ActiquestError) {
    const details = err.message.length <= MAX_DETAILS_CHARS ? err.message : `${err.message.slice(0, MAX_DETAILS_CHARS)}... (${err.message.length} characters)`;
    return { code: STATUS_OF_KIND[err.kind], details, metadata: new Metadata() };
  }
  log.error('handler failed', { method, error: err instanceof Error ? err.stack : String(err) });
  return { code: status.UNKNOWN, details: `${method}: internal error`, metadata: new Metadata() };
}

/** True when `err` is a gRPC error with the given code. */
export function hasStatus(err: unknown, code: status): err is ServiceError {
  return typeof err === 'object' && err !== null && (err as ServiceError).code === code;
}
