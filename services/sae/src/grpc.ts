/**
 * rlmesh.v1.SaeService over gRPC: a thin adapter that decodes requests, calls SaeServiceCore and
 * encodes its answers, and `startSaeServer`, the `rlmesh serve sae` entry.
 */
import type { ServerCredentials, ServerWritableStream } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { type Bus, createLogger, type Logger, MeshError, type RunningServer, type ServiceBinding, startServer } from '@rlmesh/mesh';
import {
  decodeTensor,
  type EncodeRequest,
  type EncodeResponse,
  type ExplainRequest,
  type ExplainResponse,
  type FollowSaeRequest,
  type GetSaeRequest,
  type ListSaesResponse,
  type Sae,
  SaeServiceService,
  type TrainSaeRequest,
  type TrainSaeResponse,
} from '@rlmesh/proto';
import { type SaeInfo, SaeServiceCore } from './service';

export const SAE_SERVICE_NAME = 'rlmesh.v1.SaeService';
const PROGRESS_EVERY_MS = 200;

export function saeToProto(s: SaeInfo): Sae {
  const m = s.metrics;
  return {
    id: s.id,
    configJson: JSON.stringify(s.config),
    dIn: s.d_in,
    dSae: s.d_sae,
    architecture: s.architecture,
    hook: s.hook,
    activations: s.activations,
    createdAt: s.created_at,
    analysed: s.analysed,
    metrics: {
      l0: m.l0,
      mse: m.mse,
      normalizedMse: m.normalized_mse,
      explainedVariance: m.explained_variance,
      deadFraction: m.dead_fraction,
      denseFraction: m.dense_fraction,
      rows: m.rows,
      density: m.density.map((b) => ({ lo: b.lo, hi: b.hi, count: b.count })),
    },
  };
}

const rowsOf = (t: EncodeRequest['activations']) => decodeTensor('activations', t, { dtype: 'float32', shape: [-1, -1] });

/** `bus`: where Follow reads activation streams; without one, Follow is refused (FAILED_PRECONDITION). */
export function saeServiceBinding(core: SaeServiceCore, bus?: Bus): ServiceBinding {
  return {
    name: SAE_SERVICE_NAME,
    definition: SaeServiceService,
    handlers: {
      train: async (call: ServerWritableStream<TrainSaeRequest, TrainSaeResponse>): Promise<void> => {
        const abort = new AbortController();
        call.on('cancelled', () => abort.abort());
        let last = 0;
        const r = call.request;
        const sae = await core.train({
          activations: r.activations,
          config: r.configJson,
          steps: r.steps,
          batch_size: r.batchSize,
          id: r.id,
          signal: abort.signal,
          onProgress: (step, steps, m) => {
            const now = performance.now();
            if (step < steps && now - last < PROGRESS_EVERY_MS) return;
            last = now;
            call.write({ event: { $case: 'progress', progress: { step, steps, metrics: { ...m } } } });
          },
        });
        call.write({ event: { $case: 'sae', sae: saeToProto(sae) } });
        call.end();
      },
      follow: async (call: ServerWritableStream<FollowSaeRequest, TrainSaeResponse>): Promise<void> => {
        if (!bus)
          throw new MeshError(status.FAILED_PRECONDITION, 'run_id: this SAE service was started without a NATS bus to follow runs on');
        const abort = new AbortController();
        call.on('cancelled', () => abort.abort());
        let last = 0;
        const r = call.request;
        const steps = r.steps || 2000;
        const sae = await core.follow(bus, {
          run: r.runId,
          hook: r.hook,
          config: r.configJson,
          steps,
          batchSize: r.batchSize || 1024,
          warmupRows: r.warmupRows || undefined,
          id: r.id,
          signal: abort.signal,
          onProgress: (step, m) => {
            const now = performance.now();
            if (step < steps && now - last < PROGRESS_EVERY_MS) return;
            last = now;
            call.write({ event: { $case: 'progress', progress: { step, steps, metrics: { ...m } } } });
          },
        });
        call.write({ event: { $case: 'sae', sae: saeToProto(sae) } });
        call.end();
      },
      getSae: async (req: GetSaeRequest): Promise<Sae> => saeToProto(await core.get(req.id)),
      listSaes: async (): Promise<ListSaesResponse> => ({ saes: (await core.list()).map(saeToProto) }),
      encode: async (req: EncodeRequest): Promise<EncodeResponse> => {
        const { codes, relative_error } = await core.encode(req.saeId, rowsOf(req.activations), req.topK || undefined);
        return { rows: codes, relativeError: relative_error };
      },
      explain: async (req: ExplainRequest): Promise<ExplainResponse> => {
        const rows = await core.explain(req.saeId, rowsOf(req.activations), req.topK || undefined);
        return {
          rows: rows.map((features) => ({
            features: features.map((f) => ({
              index: f.index,
              value: f.value,
              label: f.label ?? '',
              labelFraction: f.label_fraction ?? 0,
              density: f.density ?? 0,
              topExamples: f.top_examples.map((e) => ({ value: e.value, contextJson: JSON.stringify(e.context) })),
            })),
          })),
        };
      },
    },
  };
}

export interface SaeServerOptions {
  /** Activation stores are read from under here; SAEs are kept in <root>/saes. */
  root: string;
  port?: number;
  host?: string;
  logger?: Logger;
  credentials?: ServerCredentials;
  /** The mesh's bus, for Follow. */
  bus?: Bus;
}

export async function startSaeServer(opts: SaeServerOptions): Promise<RunningServer & { core: SaeServiceCore }> {
  const logger = opts.logger ?? createLogger('sae');
  const core = new SaeServiceCore(opts.root);
  const server = await startServer({
    service: 'sae',
    services: [saeServiceBinding(core, opts.bus)],
    port: opts.port,
    host: opts.host,
    credentials: opts.credentials,
    logger,
  });
  return {
    ...server,
    core,
    shutdown: async (o) => {
      await server.shutdown(o);
      await core.close();
    },
  };
}
