/**
 * A gRPC server for one or more rlmesh services, with what every service needs: grpc.health.v1,
 * reflection (from the committed descriptor set), message size limits, a SERVER span per call that
 * continues the caller's trace, errors turned into status codes (a handler that throws never crashes
 * the process), and graceful shutdown (health NOT_SERVING, drain, let in-flight calls finish).
 */
import { readFileSync } from 'node:fs';
import {
  type handleUnaryCall,
  Metadata,
  type MethodDefinition,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerWritableStream,
  type ServiceDefinition,
  type ServiceError,
  type UntypedHandleCall,
} from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer, loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { SpanKind } from '@opentelemetry/api';
import { DESCRIPTOR_SET_PATH } from '@rlmesh/proto';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { invalidArgument, type MeshError, toStatus } from './errors';
import type { Logger } from './log';
import { extractContext, inSpan } from './telemetry';

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Unary handlers are plain async functions; streaming ones get the raw call. */
export type Handlers = Record<string, ((req: never) => Promise<unknown>) | ((call: never) => Promise<void>)>;

export interface ServiceBinding {
  /** Fully qualified name, e.g. rlmesh.v1.EnvService. */
  name: string;
  definition: ServiceDefinition;
  handlers: Handlers;
}

export interface ServerOptions {
  /** Which rlmesh service this process is (span scope and logs). */
  service: string;
  services: ServiceBinding[];
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  maxMessageBytes?: number;
  /** Default: plaintext. See tls.ts for TLS and mTLS. */
  credentials?: ServerCredentials;
  logger: Logger;
}

export interface RunningServer {
  port: number;
  server: Server;
  health: HealthImplementation;
  /** Health NOT_SERVING, wait `drainMs` for load balancers to notice, then finish in-flight calls. */
  shutdown(opts?: { drainMs?: number; graceMs?: number }): Promise<void>;
}

function metadataHeaders(md: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) if (typeof v === 'string') out[k] = v;
  return out;
}

function asServiceError(e: unknown): Partial<ServiceError> {
  const { code, details } = toStatus(e);
  return { code, details, message: details, metadata: new Metadata() };
}

function wrap(
  service: string,
  fqn: string,
  method: string,
  def: ServiceDefinition[string],
  handler: Handlers[string],
  log: Logger,
): UntypedHandleCall {
  const spanName = `${fqn}/${method}`;
  const attributes = { 'rpc.system': 'grpc', 'rpc.service': fqn, 'rpc.method': method };
  if (!def.requestStream && !def.responseStream) {
    const unary: handleUnaryCall<unknown, unknown> = (call, callback) => {
      const parent = extractContext(metadataHeaders(call.metadata));
      inSpan(service, spanName, { kind: SpanKind.SERVER, parent, attributes }, async (span) => {
        try {
          const bad = undecodable(call.request);
          if (bad) throw bad;
          const res = await (handler as (req: unknown) => Promise<unknown>)(call.request);
          callback(null, res);
        } catch (e) {
          const err = asServiceError(e);
          span.setAttribute('rpc.grpc.status_code', err.code ?? 2);
          if (err.code === 13) log.error('internal error', { method: spanName, error: String((e as Error)?.stack ?? e) });
          callback(err);
        }
      });
    };
    return unary;
  }
  return (call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>) => {
    const parent = extractContext(metadataHeaders(call.metadata));
    inSpan(service, spanName, { kind: SpanKind.SERVER, parent, attributes }, async () => {
      try {
        const bad = def.requestStream ? null : undecodable((call as ServerWritableStream<unknown, unknown>).request);
        if (bad) throw bad;
        await (handler as (c: unknown) => Promise<void>)(call);
      } catch (e) {
        const err = asServiceError(e);
        if (err.code === 13) log.error('internal error', { method: spanName, error: String((e as Error)?.stack ?? e) });
        call.emit('error', err);
      }
    });
  };
}

/**
 * grpc-js answers a request it cannot decode with INTERNAL. A request the client got wrong is an
 * invalid argument, so decoding failures are caught here and turned into INVALID_ARGUMENT by `wrap`.
 */
const UNDECODABLE = Symbol('undecodable request');

function withTolerantDecoding(def: ServiceDefinition): ServiceDefinition {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [key, m] of Object.entries(def)) {
    out[key] = {
      ...m,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return m.requestDeserialize(bytes);
        } catch (e) {
          return { [UNDECODABLE]: (e as Error).message };
        }
      },
    };
  }
  return out as ServiceDefinition;
}

function undecodable(request: unknown): MeshError | null {
  const reason = (request as { [UNDECODABLE]?: string } | null)?.[UNDECODABLE];
  return reason === undefined ? null : invalidArgument('request', `cannot be decoded: ${reason}`);
}

let reflectionPackage: PackageDefinition | undefined;

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const server = new Server({ 'grpc.max_receive_message_length': maxBytes, 'grpc.max_send_message_length': maxBytes });
  const health = new HealthImplementation({ '': 'SERVING', ...Object.fromEntries(opts.services.map((s) => [s.name, 'SERVING' as const])) });
  health.addToServer(server);
  // The health proto joins ours so that reflection clients (grpcurl) can call grpc.health.v1 too.
  reflectionPackage ??= { ...loadFileDescriptorSetFromBuffer(readFileSync(DESCRIPTOR_SET_PATH)), ...loadSync(healthProtoPath) };
  const reflected = [...opts.services.map((s) => s.name), 'grpc.health.v1.Health'];
  new ReflectionService(reflectionPackage, { services: reflected }).addToServer(server);
  for (const s of opts.services) {
    const impl: Record<string, UntypedHandleCall> = {};
    for (const [key, def] of Object.entries(s.definition)) {
      const handler = s.handlers[key];
      if (!handler) throw new Error(`${s.name}: no handler for ${key}`);
      impl[key] = wrap(opts.service, s.name, def.path.split('/').at(-1)!, def, handler, opts.logger);
    }
    server.addService(withTolerantDecoding(s.definition), impl);
  }
  const host = opts.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${opts.port ?? 0}`, opts.credentials ?? ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  opts.logger.info('listening', { port, host, services: opts.services.map((s) => s.name) });
  let stopping: Promise<void> | undefined;
  const shutdown = ({ drainMs = 0, graceMs = 5000 } = {}) => {
    stopping ??= (async () => {
      health.setStatus('', 'NOT_SERVING');
      for (const s of opts.services) health.setStatus(s.name, 'NOT_SERVING');
      if (drainMs > 0) await new Promise((r) => setTimeout(r, drainMs));
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          opts.logger.warn('in-flight calls did not finish in time; forcing shutdown', { graceMs });
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    })();
    return stopping;
  };
  return { port, server, health, shutdown };
}
