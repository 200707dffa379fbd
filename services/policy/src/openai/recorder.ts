/**
 * What the endpoint hands to a recorder after every completed chat completion: enough to archive the
 * call as an agent's LLM call (messages, completion, model, token counts, latency, when, who) and to
 * train on it later (the prompt and completion token ids, their log-probs, the policy version).
 * The recorder is optional and pluggable (an archive writes it to its database); a recorder that
 * fails or hangs never fails or delays the caller's answer.
 */
import type { ChatMessage } from './template';

/** One generated token in OpenAI's `logprobs.content` shape. */
export interface TokenLogprob {
  token: string;
  logprob: number;
  /** The token's UTF-8 bytes (a token may hold part of a character). */
  bytes: number[];
  /** Always empty: the policy service gives the chosen token's log-prob only. */
  top_logprobs: never[];
}

export interface RecordedChoice {
  index: number;
  /** The text the caller received (stop strings and EOS left out). */
  content: string;
  finishReason: 'stop' | 'length';
  /** Every generated token id, the EOS or the tokens that completed a stop string included. */
  tokens: number[];
  /** log softmax(logits)[token] at temperature 1, one per token. */
  logprobs: number[];
  /** The same tokens and log-probs as OpenAI's `logprobs.content` entries (token text and bytes), as archives store them. */
  tokenLogprobs: TokenLogprob[];
}

export interface RecordedCall {
  /** The completion's id, as the caller received it (chatcmpl-...). */
  id: string;
  /** When the request arrived. */
  at: Date;
  /** The `x-rlmesh-agent` header, else the request's `user` field; null when neither is set. */
  agentId: string | null;
  /** The model id as requested (`run`, `run@latest` or `run@promoted`). */
  model: string;
  runId: string;
  channel: 'latest' | 'promoted';
  /** The policy version that generated the completion. */
  policyVersion: number;
  messages: ChatMessage[];
  /** The prompt text the chat template made of the messages, and its token ids. */
  prompt: string;
  promptTokenIds: number[];
  /** The first choice's content: what a single-answer agent acted on. */
  completion: string;
  choices: RecordedChoice[];
  promptTokens: number;
  /** Summed over the choices, as OpenAI's usage counts them. */
  completionTokens: number;
  /** From the request's arrival to the last token. */
  latencyMs: number;
  sampling: { temperature: number; topP: number; maxTokens: number; seeds: number[]; stop: string[] };
  stream: boolean;
}

export interface CallRecorder {
  record(call: RecordedCall): Promise<void>;
}

/** A recorder for tests and quick looks: keeps every call in memory. */
export class MemoryRecorder implements CallRecorder {
  readonly calls: RecordedCall[] = [];
  async record(call: RecordedCall): Promise<void> {
    this.calls.push(call);
  }
}
