/**
 * A Chat Completions request body, checked: every field OpenAI defines is either supported, accepted
 * at its neutral value, or refused with a 400 naming it; unknown fields are refused as OpenAI
 * refuses them. Checks that need the model (context length) happen in chat.ts.
 */
import { badRequest } from './errors';
import { CHAT_ROLES, type ChatMessage, type ChatRole } from './template';

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  /** Unset: the room the context leaves after the prompt. */
  maxTokens?: number;
  /** The name the request gave the limit, for errors about it. */
  maxTokensParam: 'max_tokens' | 'max_completion_tokens';
  temperature: number;
  topP: number;
  n: number;
  stop: string[];
  /** Unset: each choice draws a random seed. */
  seed?: number;
  stream: boolean;
  includeUsage: boolean;
  logprobs: boolean;
  user?: string;
}

/** Completions per request at most: they decode together, so n takes n rows of the run's batch. */
export const MAX_N = 16;
/** OpenAI's own limit on stop strings. */
export const MAX_STOP = 4;
const MAX_MESSAGES = 4096;
const MAX_USER_CHARS = 256;

const SUPPORTED = new Set([
  'model',
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'n',
  'stop',
  'seed',
  'stream',
  'stream_options',
  'logprobs',
  'top_logprobs',
  'user',
  'metadata',
  'store',
]);

/** Accepted only at the value that changes nothing; anything else would be silently ignored. */
const NEUTRAL: Record<string, (v: unknown) => boolean> = {
  frequency_penalty: (v) => v === 0,
  presence_penalty: (v) => v === 0,
  logit_bias: (v) => isObject(v) && Object.keys(v).length === 0,
  tools: (v) => Array.isArray(v) && v.length === 0,
  functions: (v) => Array.isArray(v) && v.length === 0,
  tool_choice: (v) => v === 'none',
  function_call: (v) => v === 'none',
  parallel_tool_calls: () => true,
  response_format: (v) => isObject(v) && v.type === 'text',
  service_tier: () => true,
  modalities: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
};

/** Null counts as unset, as in OpenAI's API. */
function optional<T>(body: Record<string, unknown>, key: string, check: (v: unknown) => T): T | undefined {
  const v = body[key];
  return v === undefined || v === null ? undefined : check(v);
}

function number(key: string, lo: number, hi: number, loOpen = false) {
  return (v: unknown): number => {
    const ok = typeof v === 'number' && Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && v <= hi;
    if (!ok) throw badRequest(key, `must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${show(v)}`);
    return v as number;
  };
}

function integer(key: string, lo: number, hi: number) {
  return (v: unknown): number => {
    if (!(Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi))
      throw badRequest(key, `must be an integer in [${lo}, ${hi}], got ${show(v)}`);
    return v as number;
  };
}

function boolean(key: string) {
  return (v: unknown): boolean => {
    if (typeof v !== 'boolean') throw badRequest(key, `must be true or false, got ${show(v)}`);
    return v;
  };
}

/** A message's text: a string, or an array of text parts (joined), as OpenAI's clients send either. */
function contentOf(v: unknown, i: number): string {
  const key = `messages[${i}].content`;
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) throw badRequest(key, `must be a string or an array of text parts, got ${show(v)}`);
  return v
    .map((part, j) => {
      if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string')
        throw badRequest(`${key}[${j}]`, `only text parts ({"type": "text", "text": ...}) are supported, got ${show(part)}`);
      return part.text;
    })
    .join('');
}

function messagesOf(v: unknown): ChatMessage[] {
  if (v === undefined || v === null) throw badRequest('messages', 'is required: a non-empty array of {role, content}');
  if (!Array.isArray(v) || v.length === 0) throw badRequest('messages', `must be a non-empty array of {role, content}, got ${show(v)}`);
  if (v.length > MAX_MESSAGES) throw badRequest('messages', `at most ${MAX_MESSAGES} messages, got ${v.length}`);
  return v.map((m, i) => {
    if (!isObject(m)) throw badRequest(`messages[${i}]`, `must be an object {role, content}, got ${show(m)}`);
    if (!CHAT_ROLES.includes(m.role as ChatRole))
      throw badRequest(`messages[${i}].role`, `must be one of ${CHAT_ROLES.join(', ')}, got ${show(m.role)}`);
    if (m.tool_calls !== undefined && m.tool_calls !== null) throw badRequest(`messages[${i}].tool_calls`, 'tool calls are not supported');
    if (m.content === undefined || m.content === null) throw badRequest(`messages[${i}].content`, 'is required');
    return { role: m.role as ChatRole, content: contentOf(m.content, i) };
  });
}

function stopOf(v: unknown): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string'))
    throw badRequest('stop', `must be a string or an array of strings, got ${show(v)}`);
  if (list.length > MAX_STOP) throw badRequest('stop', `at most ${MAX_STOP} strings, got ${list.length}`);
  const empty = list.indexOf('');
  if (empty >= 0) throw badRequest('stop', `entry ${empty} is empty`);
  return list as string[];
}

/** The request as ChatRequest, or a 400 naming the first field that breaks a rule. */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw badRequest('body', `must be a JSON object, got ${show(body)}`);
  for (const key of Object.keys(body)) {
    if (SUPPORTED.has(key) || body[key] === null) continue;
    const neutral = NEUTRAL[key];
    if (!neutral) throw badRequest(key, 'unrecognized request argument');
    if (!neutral(body[key])) throw badRequest(key, `is not supported by this endpoint (only its neutral value), got ${show(body[key])}`);
  }
  const model = body.model;
  if (typeof model !== 'string' || model === '') throw badRequest('model', `is required: a run id, got ${show(model)}`);
  const messages = messagesOf(body.messages);
  const maxTokens = optional(body, 'max_tokens', integer('max_tokens', 1, 1 << 20));
  const maxCompletion = optional(body, 'max_completion_tokens', integer('max_completion_tokens', 1, 1 << 20));
  if (maxTokens !== undefined && maxCompletion !== undefined)
    throw badRequest('max_completion_tokens', 'set either max_tokens or max_completion_tokens, not both');
  const logprobs = optional(body, 'logprobs', boolean('logprobs')) ?? false;
  const topLogprobs = optional(body, 'top_logprobs', integer('top_logprobs', 0, 20));
  if (topLogprobs !== undefined && !logprobs) throw badRequest('top_logprobs', 'needs logprobs: true');
  // The policy service returns the chosen token's log-prob, not the next-token distribution.
  if (topLogprobs !== undefined && topLogprobs > 0)
    throw badRequest('top_logprobs', `only 0 is supported (each token comes with its own log-prob only), got ${topLogprobs}`);
  const stream = optional(body, 'stream', boolean('stream')) ?? false;
  const streamOptions = optional(body, 'stream_options', (v) => {
    if (!isObject(v)) throw badRequest('stream_options', `must be an object, got ${show(v)}`);
    if (!stream) throw badRequest('stream_options', 'is only allowed with stream: true');
    return v;
  });
  const user = optional(body, 'user', (v) => {
    if (typeof v !== 'string' || v.length > MAX_USER_CHARS)
      throw badRequest('user', `must be a string of at most ${MAX_USER_CHARS} characters`);
    return v;
  });
  return {
    model,
    messages,
    maxTokens: maxTokens ?? maxCompletion,
    maxTokensParam: maxCompletion !== undefined ? 'max_completion_tokens' : 'max_tokens',
    temperature: optional(body, 'temperature', number('temperature', 0, 2)) ?? 1,
    topP: optional(body, 'top_p', number('top_p', 0, 1, true)) ?? 1,
    n: optional(body, 'n', integer('n', 1, MAX_N)) ?? 1,
    stop: optional(body, 'stop', stopOf) ?? [],
    seed: optional(body, 'seed', integer('seed', 0, Number.MAX_SAFE_INTEGER - MAX_N)),
    stream,
    includeUsage: streamOptions?.include_usage === true,
    logprobs,
    user,
  };
}
