/**
 * gRPC client side: channel options with message limits and retries on idempotent methods
 * (grpc-js's service-config retry policy, so retries honour the deadline), and `unary`, which
 * promisifies a generated client method with a deadline and a CLIENT span whose context travels in
 * the call's metadata; `unreachableReason` says in words why a peer did not answer.
 */
import { type CallOptions, type ChannelOptions, type ClientUnaryCall, Metadata, type ServiceError } from '@grpc/grpc-js';
import { SpanKind } from '@opentelemetry/api';
import { DEFAULT_MAX_MESSAGE_BYTES } from './server';
import { injectContext, inSpan } from './telemetry';

export interface RetryPolicy {
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Channel options for a client of `service` that retries `idempotentMethods` on UNAVAILABLE (a
 * replica going away, a connection reset) with exponential backoff.
 */
export function channelOptions(service: string, idempotentMethods: readonly string[], retry: RetryPolicy = {}): ChannelOptions {
  const serviceConfig = {
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig: [
      {
        name: idempotentMethods.map((method) => ({ service, method })),
        retryPolicy: {
          maxAttempts: retry.maxAttempts ?? 4,
          initialBackoff: `${(retry.initialBackoffMs ?? 50) / 1000}s`,
          maxBackoff: `${(retry.maxBackoffMs ?? 1000) / 1000}s`,
          backoffMultiplier: 2,
          retryableStatusCodes: ['UNAVAILABLE'],
        },
      },
    ],
  };
  return {
    'grpc.service_config': JSON.stringify(serviceConfig),
    'grpc.max_receive_message_length': DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': DEFAULT_MAX_MESSAGE_BYTES,
  };
}

type UnaryMethod<Req, Res> = (
  req: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (err: ServiceError | null, res: Res) => void,
) => ClientUnaryCall;

/** One unary call with a deadline; the returned promise rejects with the ServiceError. */
export function unary<Req, Res>(
  caller: string,
  rpcName: string,
  method: UnaryMethod<Req, Res>,
  req: Req,
  deadlineMs: number,
): Promise<Res> {
  return inSpan(caller, rpcName, { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'grpc', 'rpc.method': rpcName } }, () => {
    const md = new Metadata();
    for (const [k, v] of Object.entries(injectContext())) md.set(k, v);
    return new Promise<Res>((resolve, reject) => {
      method(req, md, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  });
}

/**
 * Why a gRPC peer could not be reached, in words a user can act on. grpc-js reports every failed
 * connection as UNAVAILABLE "No connection established. Last error: ...": a TLS failure (an unknown
 * CA, TLS spoken to a plaintext server) and nobody listening look alike unless the last error is read.
 */
export function unreachableReason(details: string): { tls: boolean; reason: string } {
  const last = /Last error: (?:Error: )?([^\n]*?)(?:\. Resolution note:.*)?$/s.exec(details)?.[1]?.trim() ?? details.trim();
  if (/certificate|SSL routines|wrong version number|handshake|tlsv1 alert|self.signed/i.test(last)) {
    const why = /wrong version number/i.test(last)
      ? 'TLS was spoken to a server that does not serve TLS'
      : last.replace(/^.*:error:[0-9A-F]+:/, '');
    return { tls: true, reason: `TLS failed: ${why} (check --tls-ca / --tls-cert / --tls-key against the server's)` };
  }
  if (/ECONNREFUSED/.test(last)) return { tls: false, reason: 'nothing listens there' };
  // A listener that drops a plaintext client at once is most often one that serves TLS.
  if (/^Failed to connect/.test(last)) return { tls: false, reason: 'it closed the connection; if it serves TLS, give --tls-ca' };
  return { tls: false, reason: last || 'no answer' };
}
