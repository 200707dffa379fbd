/**
 * A judge behind any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, llama.cpp's server,
 * Ollama, ...), called with fetch. One request per window; an answer that is not valid JSON with one
 * score in [0, 1] per trajectory id, a timeout, a network error or a retryable HTTP status (408, 409,
 * 429, 5xx) is retried after a doubling backoff; when the attempts run out, or on a status retrying
 * cannot fix (401, 404, ...), the window comes back skipped with the reason, never as an exception.
 * Tokens are metered from the API's `usage` on every attempt, failed ones included, since they are
 * paid for.
 */
import { createHash } from 'node:crypto';
import { ConfigError } from '@rlmesh/core';
import { parseAnswer } from './answer';
import { blindLabels, buildMessages, DEFAULT_RUBRIC, systemPrompt } from './prompt';
import { checkInput, type Judge, type JudgeInput, type JudgeResult, noUsage, type Usage } from './types';

export interface ChatJudgeOptions {
  /** Model name; default: the JUDGE_MODEL environment variable. */
  model?: string;
  /** Default: OPENAI_BASE_URL, else https://api.openai.com/v1. */
  baseURL?: string;
  /** Default: the environment variable named by `apiKeyEnv`. No key sends no Authorization header. */
  apiKey?: string;
  apiKeyEnv?: string;
  timeoutMs?: number;
  /** Requests per window at most, the first included. */
  maxAttempts?: number;
  /** Wait before the second attempt; doubles each time. */
  backoffMs?: number;
  temperature?: number;
  /** Sends response_format json_object; turn off for servers that reject it. */
  jsonMode?: boolean;
  maxTokens?: number;
  rubric?: string;
  /** Non-hold steps shown per trajectory. */
  maxSteps?: number;
  /** Shows trajectories as T1..Tn in a shuffled order without agent names (default true); see blindLabels. */
  blind?: boolean;
  /** Prices in USD per million tokens, for the cost meter. */
  prices?: { inputPerMillion: number; outputPerMillion: number };
}

type Attempt = { ok: true; content: string } | { ok: false; error: string; retry: boolean };

const RETRYABLE = new Set([408, 409, 429]);

function positive(key: string, v: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (integer && (!Number.isInteger(v) || v < 1)))
    throw new ConfigError(key, `must be ${integer ? 'an integer >= 1' : 'a finite number >= 0'}, got ${JSON.stringify(v)}`);
  return v;
}

export class ChatJudge implements Judge {
  readonly id: string;
  readonly model: string;
  readonly baseURL: string;
  private readonly apiKey: string | undefined;
  private readonly o: Required<Omit<ChatJudgeOptions, 'model' | 'baseURL' | 'apiKey' | 'apiKeyEnv' | 'maxTokens' | 'prices'>> &
    Pick<ChatJudgeOptions, 'maxTokens' | 'prices'>;

  constructor(opts: ChatJudgeOptions = {}, env: NodeJS.ProcessEnv = process.env) {
    const model = opts.model ?? env.JUDGE_MODEL;
    if (!model) throw new ConfigError('model', 'is required (or set JUDGE_MODEL)');
    this.model = model;
    const base = opts.baseURL ?? env.OPENAI_BASE_URL ?? 'https://api.openai.com/v1';
    if (!/^https?:\/\/[^/]/.test(base)) throw new ConfigError('baseURL', `must be an http(s) URL, got ${JSON.stringify(base)}`);
    this.baseURL = base.replace(/\/+$/, '');
    this.apiKey = opts.apiKey ?? env[opts.apiKeyEnv ?? 'OPENAI_API_KEY'];
    this.o = {
      timeoutMs: positive('timeoutMs', opts.timeoutMs ?? 60_000),
      maxAttempts: positive('maxAttempts', opts.maxAttempts ?? 3, true),
      backoffMs: positive('backoffMs', opts.backoffMs ?? 1_000),
      temperature: positive('temperature', opts.temperature ?? 0),
      jsonMode: opts.jsonMode ?? true,
      blind: opts.blind ?? true,
      rubric: opts.rubric ?? DEFAULT_RUBRIC,
      maxSteps: positive('maxSteps', opts.maxSteps ?? 60, true),
      maxTokens: opts.maxTokens === undefined ? undefined : positive('maxTokens', opts.maxTokens, true),
      prices: opts.prices,
    };
    if (opts.prices) {
      positive('prices.inputPerMillion', opts.prices.inputPerMillion);
      positive('prices.outputPerMillion', opts.prices.outputPerMillion);
    }
    // The id changes with anything that changes the scores, so cached scores are never reused across prompts.
    const promptHash = createHash('sha256')
      .update(`${systemPrompt(this.o.rubric)}\u0000${this.o.maxSteps}\u0000${this.o.temperature}\u0000${this.o.blind}`)
      .digest('hex')
      .slice(0, 12);
    this.id = `chat:${this.model}@${new URL(this.baseURL).host}:${promptHash}`;
  }

  async score(input: JudgeInput): Promise<JudgeResult> {
    checkInput(input);
    const labels = this.o.blind ? blindLabels(input) : undefined;
    const ids = input.trajectories.map((t) => labels?.get(t.id) ?? t.id);
    const body: Record<string, unknown> = {
      model: this.model,
      messages: buildMessages(input, this.o.rubric, this.o.maxSteps, labels),
      temperature: this.o.temperature,
    };
    if (this.o.jsonMode) body.response_format = { type: 'json_object' };
    if (this.o.maxTokens !== undefined) body.max_tokens = this.o.maxTokens;
    const usage = noUsage();
    const errors: string[] = [];
    const base = { windowId: input.windowId, judgeId: this.id, usage };
    for (let attempt = 1; attempt <= this.o.maxAttempts; attempt++) {
      if (attempt > 1) await new Promise((r) => setTimeout(r, this.o.backoffMs * 2 ** (attempt - 2)));
      const a = await this.request(body, usage);
      if (a.ok) {
        const read = parseAnswer(a.content, ids);
        if (read.ok) {
          // The answer is in the window's order (readScores), so labels map back by position.
          const scores = read.scores.map((sc, i) => ({ ...sc, id: input.trajectories[i].id }));
          return { kind: 'scored', ...base, scores, attempts: attempt, cached: false };
        }
        errors.push(read.error);
        continue;
      }
      errors.push(a.error);
      if (!a.retry) return { kind: 'skipped', ...base, reason: `attempt ${attempt}: ${a.error}`, attempts: attempt };
    }
    const reason = errors.map((e, i) => `attempt ${i + 1}: ${e}`).join('; ');
    return { kind: 'skipped', ...base, reason, attempts: this.o.maxAttempts };
  }

  /** One request; adds what the API reports to `usage`. */
  private async request(body: Record<string, unknown>, usage: Usage): Promise<Attempt> {
    usage.requests++;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let status: number;
    let text: string;
    try {
      const res = await fetch(`${this.baseURL}/chat/completions`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
      status = res.status;
      text = await res.text();
    } catch (e) {
      const err = e as Error;
      if (err.name === 'TimeoutError') return { ok: false, error: `no answer within ${this.o.timeoutMs} ms`, retry: true };
      return { ok: false, error: `request failed: ${err.message}${err.cause ? ` (${(err.cause as Error).message})` : ''}`, retry: true };
    }
    if (status < 200 || status >= 300)
      return { ok: false, error: `HTTP ${status}: ${text.slice(0, 300)}`, retry: RETRYABLE.has(status) || status >= 500 };
    let json: { usage?: { prompt_tokens?: number; completion_tokens?: number }; choices?: { message?: { content?: unknown } }[] };
    try {
      json = JSON.parse(text);
    } catch {
      return { ok: false, error: `the response body is not JSON: ${text.slice(0, 200)}`, retry: true };
    }
    const promptTokens = Number(json.usage?.prompt_tokens) || 0;
    const completionTokens = Number(json.usage?.completion_tokens) || 0;
    usage.promptTokens += promptTokens;
    usage.completionTokens += completionTokens;
    if (this.o.prices)
      usage.costUsd += (promptTokens * this.o.prices.inputPerMillion + completionTokens * this.o.prices.outputPerMillion) / 1e6;
    const content = json.choices?.[0]?.message?.content;
    if (typeof content !== 'string') return { ok: false, error: 'the response has no choices[0].message.content', retry: true };
    return { ok: true, content };
  }
}
