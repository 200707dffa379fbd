/**
 * The error contract of every rlmesh service: a bad request is answered with a status code and a
 * message that names the field and the rule ("obs: shape must be [*, 8], got [4, 3]"), never with a
 * crash. Cores throw these; the gRPC adapter turns any thrown error into a status (see server.ts).
 */
import { status } from '@grpc/grpc-js';

export class MeshError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

/** The request is malformed: `field` broke `rule`. */
export const invalidArgument = (field: string, rule: string) => new MeshError(status.INVALID_ARGUMENT, `${field}: ${rule}`);
/** The named thing does not exist (unknown env, run, handle). */
export const notFound = (field: string, rule: string) => new MeshError(status.NOT_FOUND, `${field}: ${rule}`);
/** The request is well-formed but the system is not in a state to serve it. */
export const failedPrecondition = (field: string, rule: string) => new MeshError(status.FAILED_PRECONDITION, `${field}: ${rule}`);
export const resourceExhausted = (field: string, rule: string) => new MeshError(status.RESOURCE_EXHAUSTED, `${field}: ${rule}`);
export const unavailable = (what: string) => new MeshError(status.UNAVAILABLE, what);

/**
 * Status details travel in an HTTP/2 trailer. Messages that quote a client's input could grow to its
 * size, and past the peer's header-list limit (16 KB in grpc-js, 10 KB in grpcio) no status arrives at
 * all, so a status carries at most this many characters of message.
 */
export const MAX_STATUS_DETAILS = 1024;

export function capDetails(message: string): string {
  if (message.length <= MAX_STATUS_DETAILS) return message;
  const cut = message.length - (MAX_STATUS_DETAILS - 40);
  return `${message.slice(0, MAX_STATUS_DETAILS - 40)}... (${cut} more characters)`;
}

export function toStatus(e: unknown): { code: status; details: string } {
  const err = e as Error;
  let code = status.INTERNAL;
  if (e instanceof MeshError) code = e.code;
  // TensorError (proto) and ConfigError (core) are request faults by construction.
  else if (err?.name === 'TensorError' || err?.name === 'ConfigError') code = status.INVALID_ARGUMENT;
  return { code, details: capDetails(err instanceof Error ? err.message : String(e)) };
}
