/**
 * The chat endpoint's metrics, beside the core's (`@opentelemetry/api`, meter `rlmesh.policy`, no-ops
 * until a MeterProvider is set; `rlmesh serve` exports them on /metrics).
 */
import { type Meter, metrics } from '@opentelemetry/api';

export function chatMetrics(meter: Meter = metrics.getMeter('rlmesh.policy')) {
  return {
    /** Every answer of POST /v1/chat/completions, by HTTP status. */
    requests: meter.createCounter('rlmesh.policy.chat.requests', {
      unit: '{request}',
      description: 'Chat completion requests answered, by status',
    }),
    /** From a request's arrival to its last token, per completed call. */
    latency: meter.createHistogram('rlmesh.policy.chat.latency', { unit: 'ms', description: 'Chat completion latency, to the last token' }),
    completionTokens: meter.createCounter('rlmesh.policy.chat.completion_tokens', {
      unit: '{token}',
      description: 'Tokens generated for chat completions',
    }),
  };
}

export type ChatMetrics = ReturnType<typeof chatMetrics>;
