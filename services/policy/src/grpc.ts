/**
 * rlmesh.v1.PolicyService over gRPC: a thin adapter that decodes tensors, calls PolicyCore and
 * encodes the answer. Status codes come from the errors the core and the tensor codec throw (see
 * @rlmesh/mesh errors.ts), so a bad request never reaches inference and never crashes the server.
 */

import type { ServerCredentials, ServerWritableStream } from '@grpc/grpc-js';
import { type Bus, createLogger, invalidArgument, type Logger, type RunningServer, type ServiceBinding, startServer } from '@rlmesh/mesh';
import {
  type ActRequest,
  type ActResponse,
  decodeTensor,
  encodeTensor,
  type GenerateRequest,
  GenerateResponse,
  type GetPolicyRequest,
  type GetPolicyResponse,
  PolicyChannel,
  PolicyServiceService,
  StopReason,
} from '@rlmesh/proto';
import { type PolicyChannelName, PolicyCore, type PolicyCoreOptions } from './core';

export const POLICY_SERVICE_NAME = 'rlmesh.v1.PolicyService';

/** Unset means latest, so that callers from before channels existed keep their behaviour. */
function channelOf(c: PolicyChannel | undefined): PolicyChannelName {
  if (c === undefined || c === PolicyChannel.POLICY_CHANNEL_UNSPECIFIED || c === PolicyChannel.POLICY_CHANNEL_LATEST) return 'latest';
  if (c === PolicyChannel.POLICY_CHANNEL_PROMOTED) return 'promoted';
  throw invalidArgument('channel', `must be LATEST or PROMOTED, got ${c}`);
}

const STOP_REASONS = {
  max_tokens: StopReason.STOP_REASON_MAX_TOKENS,
  eos: StopReason.STOP_REASON_EOS,
  stop: StopReason.STOP_REASON_STOP_SEQUENCE,
  // Never sent: a cancelled call takes no more messages.
  cancelled: StopReason.STOP_REASON_UNSPECIFIED,
} as const;

export function policyServiceBinding(core: PolicyCore): ServiceBinding {
  const act = async (req: ActRequest): Promise<ActResponse> => {
    const obs = decodeTensor('obs', req.obs, { dtype: 'float32', shape: [-1, -1] });
    const rows = obs.shape[0];
    const r = await core.act(req.runId, obs.data, rows, req.greedy, req.minVersion, req.seed, channelOf(req.channel));
    const width = r.actions.length / Math.max(1, rows);
    const categorical = r.actions instanceof Int32Array && width === 1;
    return {
      actions: encodeTensor(r.actions, categorical ? [rows] : [rows, width]),
      logProbs: encodeTensor(r.logProbs, [rows]),
      values: encodeTensor(r.values, [rows]),
      policyVersion: r.version,
    };
  };
  const getPolicy = async (req: GetPolicyRequest): Promise<GetPolicyResponse> => {
    const info = await core.getPolicy(req.runId, channelOf(req.channel));
    return { runId: req.runId, version: info.version, spec: info.spec };
  };
  // One message per token as it is chosen, then the whole completion with its log-probs and stop reason.
  const generate = async (call: ServerWritableStream<GenerateRequest, GenerateResponse>): Promise<void> => {
    const req = call.request;
    const r = await core.generate(
      req.runId,
      {
        prompt: req.prompt,
        maxNewTokens: req.maxNewTokens,
        temperature: req.temperature,
        topK: req.topK,
        topP: req.topP,
        seed: req.seed,
        eosTokenId: req.eosTokenId,
        stopSequences: req.stopSequences.map((s) => s.ids),
        promptText: req.promptText,
        stop: req.stop,
        minVersion: req.minVersion,
      },
      (token) => call.write(GenerateResponse.fromPartial({ tokenIds: [token] })),
      channelOf(req.channel),
      () => call.cancelled,
    );
    call.write(
      GenerateResponse.fromPartial({
        done: true,
        tokens: r.tokens,
        logProbs: r.logProbs,
        stopReason: STOP_REASONS[r.stopReason],
        policyVersion: r.version,
        text: r.text,
      }),
    );
    call.end();
  };
  const handlers: Record<keyof typeof PolicyServiceService, (req: never) => Promise<unknown>> = { act, getPolicy, generate };
  return { name: POLICY_SERVICE_NAME, definition: PolicyServiceService, handlers };
}

export interface PolicyServerOptions extends Omit<PolicyCoreOptions, 'logger'> {
  bus: Bus;
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  logger?: Logger;
  /** Default plaintext; see serverCredentials in @rlmesh/mesh. */
  credentials?: ServerCredentials;
}

/** A PolicyCore served over gRPC; shutting the server down also closes the core. */
export async function startPolicyServer(opts: PolicyServerOptions): Promise<RunningServer & { core: PolicyCore }> {
  const logger = opts.logger ?? createLogger('policy');
  const core = new PolicyCore({ ...opts, logger });
  let running: RunningServer;
  try {
    running = await startServer({
      service: 'policy',
      services: [policyServiceBinding(core)],
      host: opts.host,
      port: opts.port ?? 0,
      credentials: opts.credentials,
      logger,
    });
  } catch (e) {
    await core.close();
    throw e;
  }
  return {
    ...running,
    core,
    shutdown: async (o) => {
      // In-flight calls finish first (they need the core); then the workers go.
      await running.shutdown(o);
      await core.close();
    },
  };
}
