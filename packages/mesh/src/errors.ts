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

export function toStatus(e: unknown): { code: status; details: string } {
  if (e instanceof MeshError) return { code: e.code, details: e.message };
  const err = e as Error;
  // TensorError (proto) and ConfigError (core) are request faults by construction.
  if (err?.name === 'TensorError' || err?.name === 'ConfigError') return { code: status.INVALID_ARGUMENT, details: err.message };
  return { code: status.INTERNAL, details: err instanceof Error ? err.message : String(e) };
}
