/**
 * gRPC client side: channel options with message limits and retries on idempotent methods
 * (grpc-js's service-config retry policy, so retries honour the deadline), and `unary`, which
 * promisifies a generated client method with a deadline and a CLIENT span whose context travels in
 * the call's metadata.
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
