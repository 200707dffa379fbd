/**
 * Export to ART's trajectory format (OpenPipe ART, `art.Trajectory`): `messages_and_choices` is
 * one conversation in which prompt messages are plain `{role, content}` objects and every model
 * completion is an OpenAI `Choice` (`finish_reason`, `index`, `logprobs`, `message`): the choices
 * are what ART trains on. Then `reward` (a float), `metrics` (name -> number), `metadata`
 * (name -> scalar) and `logs` (strings).
 *
 * The conversation is rebuilt from the trajectory's LLM calls in order: each call's prompt adds only
 * the messages beyond what the conversation already holds (a call that continues the chat repeats
 * its history, which is not duplicated); its completion becomes a Choice with its logprobs. A
 * trajectory with no LLM calls (a scripted agent) exports its steps as user (observation) and
 * assistant (action) messages, none of them trainable.
 */
import type { StoredLlmCall, StoredTrajectory } from './rows';
import type { ChatMessage, Json } from './validate';

export interface ArtTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: { token: string; logprob: number; bytes: number[] | null }[];
}

export interface ArtChoice {
  finish_reason: string;
  index: number;
  logprobs: { content: ArtTokenLogprob[]; refusal: null } | null;
  message: { role: 'assistant'; content: string; refusal: null };
}

export type ArtMessageOrChoice = ChatMessage | ArtChoice;

export type ArtMetadataValue = string | number | boolean | null;

export interface ArtTrajectory {
  messages_and_choices: ArtMessageOrChoice[];
  reward: number;
  metrics: Record<string, number>;
  metadata: Record<string, ArtMetadataValue>;
  logs: string[];
}

function utf8(text: string): number[] {
  return [...Buffer.from(text, 'utf8')];
}

function toChoice(call: StoredLlmCall): ArtChoice {
  return {
    finish_reason: call.finishReason ?? 'stop',
    index: 0,
    logprobs:
      call.logprobs === null
        ? null
        : {
            content: call.logprobs.map((t) => ({
              token: t.token,
              logprob: t.logprob,
              bytes: t.bytes ?? utf8(t.token),
              top_logprobs: (t.top_logprobs ?? []).map((o) => ({ token: o.token, logprob: o.logprob, bytes: o.bytes ?? utf8(o.token) })),
            })),
            refusal: null,
          },
    message: { role: 'assistant', content: call.completion, refusal: null },
  };
}

/** The message a conversation entry reads as, for comparing with a later prompt's history. */
function asMessage(entry: ArtMessageOrChoice): { role: string; content: string } {
  return isChoice(entry) ? entry.message : { role: entry.role, content: entry.content };
}

export function isChoice(entry: ArtMessageOrChoice): entry is ArtChoice {
  return 'finish_reason' in entry && 'message' in entry;
}

function sameMessage(a: ArtMessageOrChoice, b: ChatMessage): boolean {
  const m = asMessage(a);
  return m.role === b.role && m.content === b.content;
}

export function conversationOf(trajectory: StoredTrajectory, calls: StoredLlmCall[]): ArtMessageOrChoice[] {
  const out: ArtMessageOrChoice[] = [];
  if (calls.length === 0) {
    for (const step of trajectory.steps) {
      out.push({ role: 'user', content: JSON.stringify(step.observation) });
      out.push({ role: 'assistant', content: JSON.stringify(step.action) });
    }
    return out;
  }
  for (const call of calls) {
    let shared = 0;
    while (shared < out.length && shared < call.messages.length && sameMessage(out[shared], call.messages[shared])) shared++;
    // A fresh prompt (not a continuation) keeps its own messages, except a system prompt repeated verbatim.
    const fresh = shared < out.length;
    for (const m of call.messages.slice(fresh ? 0 : shared)) {
      if (fresh && m.role === 'system' && out.some((e) => sameMessage(e, m))) continue;
      out.push(m);
    }
    out.push(toChoice(call));
  }
  return out;
}

function scalar(value: Json): value is ArtMetadataValue {
  return value === null || typeof value !== 'object';
}

/** One trajectory in ART's shape; `reward` defaults to the final P&L. */
export function toArtTrajectory(trajectory: StoredTrajectory, calls: StoredLlmCall[], options: { reward?: number } = {}): ArtTrajectory {
  const metadata: Record<string, ArtMetadataValue> = {};
  // The trajectory's own scalar metadata first, so the archive's identifying keys win a clash.
  for (const [k, v] of Object.entries(trajectory.metadata)) if (scalar(v)) metadata[k] = v;
  Object.assign(metadata, {
    trajectory_id: trajectory.id,
    agent_id: trajectory.agentId,
    window_id: trajectory.windowId,
    scenario_id: trajectory.scenarioId,
    model_version: trajectory.modelVersion,
    started_at: trajectory.startedAt.toISOString(),
    ended_at: trajectory.endedAt.toISOString(),
  });
  return {
    messages_and_choices: conversationOf(trajectory, calls),
    reward: options.reward ?? trajectory.finalPnl,
    metrics: {
      final_pnl: trajectory.finalPnl,
      steps: trajectory.steps.length,
      step_reward_sum: trajectory.steps.reduce((s, x) => s + x.reward, 0),
      llm_calls: calls.length,
      completion_tokens: calls.reduce((s, c) => s + (c.completionTokens ?? 0), 0),
    },
    metadata,
    logs: [],
  };
}
