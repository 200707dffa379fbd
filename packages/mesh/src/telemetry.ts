/**
 * OpenTelemetry for a service process. `startTelemetry` must run before @grpc/grpc-js is loaded
 * (the service entry points call it first and load everything else after), so that any
 * instrumentation an operator adds through the SDK sees grpc-js load.
 *
 * Spans are made by rlmesh's own code rather than by auto-instrumentation: the gRPC server/client
 * wrappers (server.ts, client.ts) open SERVER/CLIENT spans and carry W3C trace context in gRPC
 * metadata, and the bus carries it in NATS message headers. The same code is therefore traced in a
 * service process, in the embedded mode and in tests.
 *
 * Exporters: RLMESH_TRACE_FILE=<path> appends finished spans as JSON lines (for local debugging and
 * multi-process tests); OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT select the SDK's own
 * exporters; otherwise spans are created (context still propagates) but not exported. Metrics are
 * served in Prometheus text format on `metricsPort` (/metrics) when one is given.
 */
import { appendFileSync } from 'node:fs';
import { type Context, context, propagation, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { envDetector, hostDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { type ReadableSpan, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface TelemetryOptions {
  serviceName: string;
  /** Serve Prometheus metrics on this port; undefined: no metrics endpoint. */
  metricsPort?: number;
  metricsHost?: string;
  /** Extra span exporters (tests pass an InMemorySpanExporter). */
  spanExporters?: SpanExporter[];
}

export interface Telemetry {
  shutdown(): Promise<void>;
  /** Settles once /metrics listens; rejects (EADDRINUSE, EACCES) when it cannot. */
  metricsReady: Promise<void>;
}

export function startTelemetry(opts: TelemetryOptions): Telemetry {
  const processors: SpanProcessor[] = (opts.spanExporters ?? []).map((e) => new SimpleSpanProcessor(e));
  if (process.env.RLMESH_TRACE_FILE) processors.push(new SimpleSpanProcessor(new JsonlSpanExporter(process.env.RLMESH_TRACE_FILE)));
  const sdkExporters = process.env.OTEL_TRACES_EXPORTER || process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const prometheus =
    opts.metricsPort === undefined ? undefined : new PrometheusExporter({ port: opts.metricsPort, host: opts.metricsHost ?? '127.0.0.1' });
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ 'service.name': opts.serviceName, 'process.pid': process.pid }),
    // Not the SDK's process detector: it publishes the full command line on /metrics, where secrets
    // passed as arguments (a NATS URL with a password) would be read by anyone who can scrape.
    resourceDetectors: [envDetector, hostDetector],
    // undefined lets the SDK build processors from OTEL_* variables.
    spanProcessors: sdkExporters && processors.length === 0 ? undefined : processors,
    metricReaders: prometheus ? [prometheus] : [],
    instrumentations: [],
  });
  sdk.start();
  // startServer() hands back the exporter's own listen promise, so a taken port surfaces here.
  const metricsReady = prometheus ? prometheus.startServer() : Promise.resolve();
  metricsReady.catch(() => undefined);
  return { shutdown: () => sdk.shutdown(), metricsReady };
}

/** Finished spans as JSON lines: enough to rebuild traces across processes. */
export class JsonlSpanExporter implements SpanExporter {
  constructor(private readonly path: string) {}
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    const lines = spans.map((s) =>
      JSON.stringify({
        trace_id: s.spanContext().traceId,
        span_id: s.spanContext().spanId,
        parent_span_id: s.parentSpanContext?.spanId,
        name: s.name,
        service: s.resource.attributes['service.name'],
        scope: s.instrumentationScope.name,
        start_ms: s.startTime[0] * 1e3 + s.startTime[1] / 1e6,
        duration_ms: s.duration[0] * 1e3 + s.duration[1] / 1e6,
        attributes: s.attributes,
      }),
    );
    appendFileSync(this.path, `${lines.join('\n')}\n`);
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
}

/** The tracer of one rlmesh service; scope names are `rlmesh.<service>`. */
export const tracerFor = (service: string) => trace.getTracer(`rlmesh.${service}`);

/** W3C trace context of `ctx` (default: the active one) as string headers, for NATS or gRPC metadata. */
export function injectContext(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

export function extractContext(headers: Record<string, string>): Context {
  return propagation.extract(context.active(), headers);
}

/** Runs `fn` in a span that ends when it settles, recording an exception as the span's error. */
export async function inSpan<T>(
  service: string,
  name: string,
  opts: { kind?: SpanKind; parent?: Context; attributes?: Record<string, string | number | boolean> },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const tracer = tracerFor(service);
  const parent = opts.parent ?? context.active();
  return tracer.startActiveSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, attributes: opts.attributes }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
      throw e;
    } finally {
      span.end();
    }
  });
}
