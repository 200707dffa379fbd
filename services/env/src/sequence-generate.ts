/**
 * The text actor's generate function through the mesh: each row of a SequenceCollector's request
 * becomes one PolicyService.Generate call, all in flight together, so the policy service decodes
 * them in its shared loop. A row's figures come from the call's final message (the whole
 * completion, its behaviour log-probs, why it stopped, the version that wrote it); the rollout's
 * version is the oldest that answered, so its lag is never understated.
 */
import type { ServiceError } from '@grpc/grpc-js';
import type { GenerateFn, SequenceRequest, SequenceResult } from '@rlmesh/core';
import { GenerateRequest, type GenerateResponse, type PolicyServiceClient, StopReason } from '@rlmesh/proto';

export interface GenerateThroughPolicyOptions {
  /** Per call: a completion must be done within this many milliseconds. Default 60 s. */
  deadlineMs?: number;
  /** Ask for at least this policy version (the call waits for it, as Act's min_version). Default 0. */
  minVersion?: () => number;
}

const STOP: Record<number, SequenceResult['stopReason']> = {
  [StopReason.STOP_REASON_MAX_TOKENS]: 'max_tokens',
  [StopReason.STOP_REASON_EOS]: 'eos',
  [StopReason.STOP_REASON_STOP_SEQUENCE]: 'stop',
};

/** One Generate call to its final message. */
function generateOne(client: PolicyServiceClient, req: GenerateRequest, deadlineMs: number): Promise<GenerateResponse> {
  return new Promise((resolve, reject) => {
    let final: GenerateResponse | null = null;
    const call = client.generate(req, { deadline: Date.now() + deadlineMs });
    call.on('data', (m: GenerateResponse) => {
      if (m.done) final = m;
    });
    call.on('error', (e: ServiceError) => reject(new Error(`Generate for run ${req.runId}: ${e.details || e.message}`)));
    call.on('end', () =>
      final ? resolve(final) : reject(new Error(`Generate for run ${req.runId}: the stream ended without a final message`)),
    );
  });
}

function request(runId: string, r: SequenceRequest, minVersion: number): GenerateRequest {
  return GenerateRequest.fromPartial({
    runId,
    prompt: [...r.prompt],
    maxNewTokens: r.maxNewTokens,
    temperature: r.temperature,
    topK: r.topK,
    topP: r.topP,
    seed: r.seed,
    ...(r.eosTokenId === undefined ? {} : { eosTokenId: r.eosTokenId }),
    minVersion,
  });
}

/** A GenerateFn served by the policy service's Generate for run `runId`. */
export function generateThroughPolicy(client: PolicyServiceClient, runId: string, o: GenerateThroughPolicyOptions = {}): GenerateFn {
  const deadlineMs = o.deadlineMs ?? 60_000;
  return async (rows) => {
    const minVersion = o.minVersion?.() ?? 0;
    const finals = await Promise.all(rows.map((r) => generateOne(client, request(runId, r, minVersion), deadlineMs)));
    const results = finals.map((m): SequenceResult => {
      const stopReason = STOP[m.stopReason];
      if (!stopReason) throw new Error(`Generate for run ${runId}: final message without a stop reason`);
      return { tokens: m.tokens, logProbs: m.logProbs, stopReason };
    });
    const version = Math.min(...finals.map((m) => Number(m.policyVersion)));
    return { results, version };
  };
}
