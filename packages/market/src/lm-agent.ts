/**
 * A language-model trader: each turn it sends the observation, rendered as a prompt, to an
 * OpenAI-compatible chat completions endpoint (the policy service's, or any other) and returns the
 * completion for the market's parser. It names itself in the `user` field and the `x-rlmesh-agent`
 * header, so a recording endpoint can file the call under the agent. A failed request (network,
 * timeout, HTTP error) is no decision: the turn passes, and the failure is counted and kept.
 */
import type { Observation } from './market';
import type { Agent } from './strategies';
import { renderPrompt } from './text';

export interface LmAgentOptions {
  id: string;
  paceMs?: number;
  /** e.g. http://127.0.0.1:8000/v1 */
  baseURL: string;
  model: string;
  apiKey?: string;
  timeoutMs?: number;
  maxTokens?: number;
  temperature?: number;
  system?: string;
}

export const DEFAULT_TRADER_SYSTEM = 'You are a careful trader. Read the market and answer with one action line only.';

export interface LmAgent extends Agent {
  failures: number;
  lastError: string | null;
}

export function lmAgent(o: LmAgentOptions): LmAgent {
  if (!/^https?:\/\/[^/]/.test(o.baseURL))
    throw new Error(`lmAgent ${o.id}: baseURL must be an http(s) URL, got ${JSON.stringify(o.baseURL)}`);
  const url = `${o.baseURL.replace(/\/+$/, '')}/chat/completions`;
  const agent: LmAgent = {
    id: o.id,
    paceMs: o.paceMs ?? 60_000,
    failures: 0,
    lastError: null,
    async act(obs: Observation) {
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-rlmesh-agent': o.id };
      if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`;
      const body = {
        model: o.model,
        user: o.id,
        max_tokens: o.maxTokens ?? 16,
        temperature: o.temperature ?? 1,
        messages: [
          { role: 'system', content: o.system ?? DEFAULT_TRADER_SYSTEM },
          { role: 'user', content: renderPrompt(obs) },
        ],
      };
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers,
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(o.timeoutMs ?? 30_000),
        });
        const text = await res.text();
        if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
        const content = JSON.parse(text)?.choices?.[0]?.message?.content;
        if (typeof content !== 'string') throw new Error('the response has no choices[0].message.content');
        return content;
      } catch (e) {
        agent.failures++;
        agent.lastError = (e as Error).message;
        return null;
      }
    },
  };
  return agent;
}
