/**
 * rlmesh.v1.EvaluatorService over gRPC: a thin adapter that maps messages to and from EvaluatorCore
 * (results travel as typed messages mirroring the EvaluationResult JSON), and `startEvaluatorServer`,
 * the `rlmesh serve evaluator` entry, which also runs the promotion gate of every run on the bus.
 */
import type { ServerCredentials, ServerWritableStream } from '@grpc/grpc-js';
import type { EvaluationResult, Summary } from '@rlmesh/core';
import { type Bus, createLogger, invalidArgument, type Logger, type RunningServer, type ServiceBinding, startServer } from '@rlmesh/mesh';
import {
  type CompareRequest,
  type CompareResponse,
  type EvaluateRequest,
  type EvaluateResponse,
  type Evaluation,
  EvaluatorServiceService,
  type GetEvaluationRequest,
  type ListEvaluationsRequest,
  type ListEvaluationsResponse,
  type EvaluationSummary as PbEvaluationSummary,
  PolicyChannel,
  type StatSummary,
} from '@rlmesh/proto';
import { PromotionGate } from './gate';
import { EvaluatorCore, type PolicySelector } from './service';
import { BusEvaluationStore, type EvaluationStore, type EvaluationSummary } from './store';

export const EVALUATOR_SERVICE_NAME = 'rlmesh.v1.EvaluatorService';
const PROGRESS_EVERY_MS = 100;

const stat = (s: Summary): StatSummary => ({ mean: s.mean, median: s.median, std: s.std, min: s.min, max: s.max });

const policyToProto = (p: EvaluationResult['policy']) => ({
  runId: p.run_id ?? '',
  version: p.version ?? 0,
  checkpoint: p.checkpoint ?? '',
  label: p.label ?? '',
});

export function evaluationToProto(r: EvaluationResult): Evaluation {
  const agg = (a: EvaluationResult['aggregate']['all']) => ({ successRate: a.success_rate, returnMean: a.return_mean, weight: a.weight });
  return {
    id: r.id,
    suite: r.suite,
    policy: policyToProto(r.policy),
    mode: r.mode,
    createdAt: r.created_at,
    environments: r.environments.map((e) => ({
      name: e.name,
      envId: e.env_id,
      optionsJson: JSON.stringify(e.options),
      split: e.split,
      weight: e.weight,
      episodes: e.episodes,
      successes: e.successes,
      successRate: e.success_rate,
      interval: { ...e.interval },
      returns: stat(e.returns),
      lengths: stat(e.lengths),
      seeds: e.seeds,
      level: e.level,
      components: { ...e.components },
    })),
    all: agg(r.aggregate.all),
    bySplit: Object.fromEntries(Object.entries(r.aggregate.by_split).map(([k, a]) => [k, agg(a)])),
    durationS: r.duration_s,
  };
}

function summaryToProto(s: EvaluationSummary): PbEvaluationSummary {
  return {
    id: s.id,
    suite: s.suite,
    policy: policyToProto(s.policy),
    mode: s.mode,
    createdAt: s.created_at,
    all: { successRate: s.all.success_rate, returnMean: s.all.return_mean, weight: s.all.weight },
    episodes: s.episodes,
  };
}

function selectorFromProto(req: EvaluateRequest): PolicySelector {
  const p = req.policy;
  if (!p) throw invalidArgument('policy', 'is required (a run_id, or a checkpoint)');
  let channel: PolicySelector['channel'];
  if (p.channel === PolicyChannel.POLICY_CHANNEL_PROMOTED) channel = 'promoted';
  else if (p.channel === PolicyChannel.POLICY_CHANNEL_LATEST || p.channel === PolicyChannel.POLICY_CHANNEL_UNSPECIFIED) channel = 'latest';
  else throw invalidArgument('policy.channel', `must be LATEST or PROMOTED, got ${p.channel}`);
  return { run_id: p.runId, version: p.version, channel, checkpoint: p.checkpoint, label: p.label };
}

export function evaluatorServiceBinding(core: EvaluatorCore): ServiceBinding {
  return {
    name: EVALUATOR_SERVICE_NAME,
    definition: EvaluatorServiceService,
    handlers: {
      evaluate: async (call: ServerWritableStream<EvaluateRequest, EvaluateResponse>): Promise<void> => {
        const abort = new AbortController();
        call.on('cancelled', () => abort.abort());
        let last = 0;
        const result = await core.evaluate({
          suite: call.request.suite,
          policy: selectorFromProto(call.request),
          signal: abort.signal,
          onProgress: (p) => {
            // Single-step episodes finish by the thousand per second: report an entry's end and at
            // most one message per PROGRESS_EVERY_MS in between, so the stream costs little.
            const now = performance.now();
            if (p.entry_episodes_done < p.entry_episodes_total && now - last < PROGRESS_EVERY_MS) return;
            last = now;
            call.write({
              event: {
                $case: 'progress',
                progress: {
                  entry: p.entry,
                  entryEpisodesDone: p.entry_episodes_done,
                  entryEpisodesTotal: p.entry_episodes_total,
                  episodesDone: p.episodes_done,
                  episodesTotal: p.episodes_total,
                },
              },
            });
          },
        });
        call.write({ event: { $case: 'result', result: evaluationToProto(result) } });
        call.end();
      },
      getEvaluation: async (req: GetEvaluationRequest): Promise<Evaluation> => evaluationToProto(await core.get(req.id)),
      compare: async (req: CompareRequest): Promise<CompareResponse> => {
        if (req.epsilonSe && req.epsilon !== 0) throw invalidArgument('epsilon', 'set either epsilon or epsilon_se, not both');
        const c = await core.compare(req.ids, { minEpisodes: req.minEpisodes, epsilon: req.epsilonSe ? 'se' : req.epsilon });
        return { ids: c.ids, dominance: c.ids.map((id, i) => ({ id, dominates: c.dominance[i] })), frontier: c.frontier };
      },
      listEvaluations: async (req: ListEvaluationsRequest): Promise<ListEvaluationsResponse> => ({
        evaluations: (await core.list({ run_id: req.runId, suite: req.suite })).map(summaryToProto),
      }),
    },
  };
}

export interface EvaluatorServerOptions {
  bus: Bus;
  /** Default: results in the bus (KV summary + object per evaluation). */
  store?: EvaluationStore;
  port?: number;
  host?: string;
  logger?: Logger;
  /** Default plaintext; see serverCredentials in @rlmesh/mesh. */
  credentials?: ServerCredentials;
  /** Run the promotion gate of runs whose config has an eval section (default true). */
  gate?: boolean;
  /** Checkpoints named in requests are read only from under this directory (EvaluatorCoreOptions). */
  checkpointRoot?: string;
}

/** An EvaluatorCore served over gRPC, with the promotion gate watching the bus. */
export async function startEvaluatorServer(
  opts: EvaluatorServerOptions,
): Promise<RunningServer & { core: EvaluatorCore; gate: PromotionGate | null }> {
  const logger = opts.logger ?? createLogger('evaluator');
  const core = new EvaluatorCore({
    store: opts.store ?? new BusEvaluationStore(opts.bus),
    bus: opts.bus,
    logger,
    checkpointRoot: opts.checkpointRoot,
  });
  const server = await startServer({
    service: 'evaluator',
    services: [evaluatorServiceBinding(core)],
    port: opts.port,
    host: opts.host,
    credentials: opts.credentials,
    logger,
  });
  const gate = opts.gate === false ? null : await PromotionGate.start({ bus: opts.bus, core, logger });
  return {
    ...server,
    core,
    gate,
    shutdown: async (o) => {
      // The gate stops first, so that no evaluation starts while the server drains.
      await gate?.stop();
      await server.shutdown(o);
    },
  };
}
