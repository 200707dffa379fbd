/**
 * The archive as the OpenAI-compatible endpoint's call recorder: every completed chat completion
 * becomes an archive LLM call, field for field. The endpoint's RecordedCall is restated here as the
 * fields this adapter reads (TypeScript matches it by shape), so the archive needs no service and
 * the endpoint no database:
 *
 *   RecordedCall                        archive LLM call
 *   id (chatcmpl-...)                   id (a retried record writes once)
 *   agentId                             agentId, mapped into the archive's id charset (archiveAgentId)
 *   runId, policyVersion                model `<run>@v<version>`: the weights that generated, not the alias asked for
 *   messages                            messages
 *   completion, choices[0].finishReason completion, finishReason
 *   choices[0].tokenLogprobs            logprobs (token text, log-prob, UTF-8 bytes: enough to recover the ids)
 *   promptTokens, choices[0] tokens     promptTokens, completionTokens (the first choice's: what the agent acted on)
 *   latencyMs, at                       latencyMs, at
 *
 * Each call is written at once, outside any trajectory, in the window of its time; a trainer joins
 * it to its agent's trajectory by agent id and time (the learner's callsOfTrajectory).
 */
import { createHash } from 'node:crypto';
import type { Archive } from './archive';

/** The fields of the endpoint's RecordedCall (services/policy/src/openai/recorder.ts) this adapter reads. */
export interface EndpointCall {
  id: string;
  at: Date;
  agentId: string | null;
  runId: string;
  policyVersion: number;
  messages: { role: string; content: string }[];
  completion: string;
  choices: {
    finishReason: 'stop' | 'length';
    tokens: number[];
    tokenLogprobs: { token: string; logprob: number; bytes: number[] }[];
  }[];
  promptTokens: number;
  latencyMs: number;
}

export interface ArchiveRecorderOptions {
  /** When the call happened for the archive; default the request's arrival. A simulation passes its own clock. */
  at?: (call: EndpointCall) => Date;
}

const ID_CHAR = /[^A-Za-z0-9._:@/-]/g;
const VALID_ID = /^[A-Za-z0-9._:@/-]{1,200}$/;
const MAX_ID = 200;

/**
 * An endpoint agent id (any header text up to 256 characters) as an archive agent id (1-200 of
 * letters, digits and ._:@/-). An id already valid is kept; any other has its other characters
 * replaced by `_` and a hash of the original appended, so two ids that differ only in replaced
 * characters stay two agents.
 */
export function archiveAgentId(raw: string): string {
  if (VALID_ID.test(raw)) return raw;
  const hash = createHash('sha256').update(raw).digest('hex').slice(0, 12);
  return `${raw.replace(ID_CHAR, '_').slice(0, MAX_ID - hash.length - 1)}-${hash}`;
}

/** A CallRecorder (services/policy's interface) that writes every call into `archive`. */
export function archiveCallRecorder(archive: Archive, options: ArchiveRecorderOptions = {}): { record(call: EndpointCall): Promise<void> } {
  return {
    async record(call) {
      const first = call.choices[0];
      const agentId = call.agentId === null ? undefined : archiveAgentId(call.agentId);
      await archive.recordLlmCall({
        id: call.id,
        agentId,
        model: `${call.runId}@v${call.policyVersion}`,
        messages: call.messages,
        completion: call.completion,
        finishReason: first?.finishReason,
        promptTokens: call.promptTokens,
        completionTokens: first?.tokens.length ?? 0,
        latencyMs: call.latencyMs,
        logprobs: first?.tokenLogprobs.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })) ?? [],
        at: options.at?.(call) ?? call.at,
      });
    },
  };
}
