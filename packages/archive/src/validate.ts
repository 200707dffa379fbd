/**
 * The archive's input shapes and their checks. Every error names the field path and the rule, so a
 * malformed trajectory from an agent says exactly what to fix; nothing is written before it passes.
 */
import { ArchiveInputError } from './errors';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface StepInput {
  observation: Json;
  action: Json;
  reward: number;
  /** When the step happened; default: when it was appended or recorded. */
  at?: Date | string;
}

export interface Step {
  observation: Json;
  action: Json;
  reward: number;
  /** ISO 8601 instant. */
  at: string;
}

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: Json;
}

/** One sampled token, OpenAI's logprobs.content[] shape. */
export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes?: number[] | null;
  top_logprobs?: { token: string; logprob: number; bytes?: number[] | null }[];
}

export interface LlmCallInput {
  /** Makes a retried write of the same call idempotent; default: a random UUID. */
  id?: string;
  /** The open trajectory this call belongs to (its window and agent then come from it). */
  trajectoryId?: string;
  agentId?: string;
  model: string;
  /** The prompt, as chat messages. */
  messages: ChatMessage[];
  completion: string;
  finishReason?: string;
  promptTokens?: number;
  completionTokens?: number;
  latencyMs?: number;
  logprobs?: TokenLogprob[];
  at?: Date | string;
}

export interface TrajectoryInput {
  /** Makes a retried write idempotent; default: a random UUID. */
  id?: string;
  agentId: string;
  startedAt: Date | string;
  endedAt: Date | string;
  steps: StepInput[];
  finalPnl: number;
  metadata?: { [key: string]: Json };
  modelVersion?: string;
  /** LLM calls made during the trajectory, in order; written in the same transaction. */
  llmCalls?: LlmCallInput[];
}

const MAX_DEPTH = 64;
/** OpenAI's finish reasons: the only ones an exported ART choice may carry. */
export const FINISH_REASONS = ['stop', 'length', 'tool_calls', 'content_filter', 'function_call'] as const;
const ID = /^[A-Za-z0-9._:@/-]{1,200}$/;

function fail(path: string, rule: string, value?: unknown): never {
  const got = value === undefined ? 'undefined' : describe(value);
  throw new ArchiveInputError(`${path}: ${rule}, got ${got}`);
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (value instanceof Date) return `Date(${value.getTime()})`;
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

export function checkString(value: unknown, path: string, maxLength = 100_000): string {
  if (typeof value !== 'string' || value.length === 0) fail(path, 'must be a non-empty string', value);
  if (value.length > maxLength) fail(path, `must be at most ${maxLength} characters`, `${value.length} characters`);
  return value;
}

export function checkId(value: unknown, path: string): string {
  if (typeof value !== 'string' || !ID.test(value)) fail(path, 'must be 1-200 characters of letters, digits and ._:@/-', value);
  return value;
}

export function checkFinite(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(path, 'must be a finite number', value);
  return value;
}

function checkCount(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
    fail(path, 'must be a non-negative integer', value);
  }
  return value;
}

export function checkDate(value: unknown, path: string): Date {
  const date = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime())) fail(path, 'must be a Date or an ISO 8601 string', value);
  return date;
}

/** JSON that survives a round trip unchanged: no undefined, functions, NaN or Infinity, no cycles. */
export function checkJson(value: unknown, path: string, depth = 0): Json {
  if (depth > MAX_DEPTH) fail(path, `must nest at most ${MAX_DEPTH} levels`, 'deeper');
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return checkFinite(value, path);
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      checkJson(v, `${path}[${i}]`, depth + 1);
    });
    return value as Json[];
  }
  if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) checkJson(v, `${path}.${k}`, depth + 1);
    return value as { [key: string]: Json };
  }
  return fail(path, 'must be JSON (null, boolean, finite number, string, array or object)', value);
}

function checkObject(value: unknown, path: string): Record<string, unknown> {
  if (!isPlainObject(value)) fail(path, 'must be an object', value);
  return value;
}

export function checkStep(value: unknown, path: string, defaultAt: Date): Step {
  const s = checkObject(value, path);
  if (!('observation' in s)) fail(`${path}.observation`, 'is required (JSON; null if there is none)');
  if (!('action' in s)) fail(`${path}.action`, 'is required (JSON; null if there is none)');
  return {
    observation: checkJson(s.observation, `${path}.observation`),
    action: checkJson(s.action, `${path}.action`),
    reward: checkFinite(s.reward, `${path}.reward`),
    at: (s.at === undefined ? defaultAt : checkDate(s.at, `${path}.at`)).toISOString(),
  };
}

function checkMessages(value: unknown, path: string): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) fail(path, 'must be a non-empty array of chat messages', value);
  value.forEach((m, i) => {
    const msg = checkObject(m, `${path}[${i}]`);
    checkString(msg.role, `${path}[${i}].role`, 64);
    if (typeof msg.content !== 'string') fail(`${path}[${i}].content`, 'must be a string', msg.content);
    checkJson(msg, `${path}[${i}]`);
  });
  return value as ChatMessage[];
}

function checkLogprobs(value: unknown, path: string): TokenLogprob[] {
  if (!Array.isArray(value)) fail(path, 'must be an array of {token, logprob}', value);
  value.forEach((t, i) => {
    const tok = checkObject(t, `${path}[${i}]`);
    if (typeof tok.token !== 'string') fail(`${path}[${i}].token`, 'must be a string', tok.token);
    const lp = checkFinite(tok.logprob, `${path}[${i}].logprob`);
    if (lp > 0) fail(`${path}[${i}].logprob`, 'must be <= 0 (a log-probability)', lp);
    checkJson(tok, `${path}[${i}]`);
  });
  return value as TokenLogprob[];
}

export interface CheckedLlmCall {
  id?: string;
  trajectoryId?: string;
  agentId?: string;
  model: string;
  messages: ChatMessage[];
  completion: string;
  finishReason: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  latencyMs: number | null;
  logprobs: TokenLogprob[] | null;
  at: Date;
}

export function checkLlmCall(value: unknown, path: string, defaultAt: Date): CheckedLlmCall {
  const c = checkObject(value, path);
  const opt = <T>(key: string, check: (v: unknown, p: string) => T): T | null =>
    c[key] === undefined || c[key] === null ? null : check(c[key], `${path}.${key}`);
  if (typeof c.completion !== 'string') fail(`${path}.completion`, 'must be a string', c.completion);
  const latency = opt('latencyMs', checkFinite);
  if (latency !== null && latency < 0) fail(`${path}.latencyMs`, 'must be >= 0', latency);
  return {
    id: opt('id', checkId) ?? undefined,
    trajectoryId: opt('trajectoryId', checkId) ?? undefined,
    agentId: opt('agentId', checkId) ?? undefined,
    model: checkString(c.model, `${path}.model`, 200),
    messages: checkMessages(c.messages, `${path}.messages`),
    completion: c.completion,
    finishReason: opt('finishReason', (v, p) => {
      if (!(FINISH_REASONS as readonly unknown[]).includes(v)) fail(p, `must be one of ${FINISH_REASONS.join(', ')}`, v);
      return v as string;
    }),
    promptTokens: opt('promptTokens', checkCount),
    completionTokens: opt('completionTokens', checkCount),
    latencyMs: latency,
    logprobs: opt('logprobs', checkLogprobs),
    at: c.at === undefined ? defaultAt : checkDate(c.at, `${path}.at`),
  };
}

export interface CheckedTrajectory {
  id?: string;
  agentId: string;
  startedAt: Date;
  endedAt: Date;
  steps: Step[];
  finalPnl: number;
  metadata: { [key: string]: Json };
  modelVersion: string | null;
  llmCalls: CheckedLlmCall[];
}

export function checkTrajectory(value: unknown, path = 'trajectory'): CheckedTrajectory {
  const t = checkObject(value, path);
  const agentId = checkId(t.agentId, `${path}.agentId`);
  const startedAt = checkDate(t.startedAt, `${path}.startedAt`);
  const endedAt = checkDate(t.endedAt, `${path}.endedAt`);
  if (endedAt < startedAt) fail(`${path}.endedAt`, `must not be before startedAt (${startedAt.toISOString()})`, endedAt.toISOString());
  if (!Array.isArray(t.steps)) fail(`${path}.steps`, 'must be an array of steps', t.steps);
  const steps = t.steps.map((s, i) => checkStep(s, `${path}.steps[${i}]`, endedAt));
  const calls = t.llmCalls === undefined ? [] : t.llmCalls;
  if (!Array.isArray(calls)) fail(`${path}.llmCalls`, 'must be an array of LLM calls', calls);
  const llmCalls = calls.map((c, i) => {
    const call = checkLlmCall(c, `${path}.llmCalls[${i}]`, endedAt);
    if (call.agentId !== undefined && call.agentId !== agentId) {
      fail(`${path}.llmCalls[${i}].agentId`, `must be the trajectory's agent ${JSON.stringify(agentId)} or absent`, call.agentId);
    }
    return call;
  });
  const metadata = t.metadata === undefined ? {} : checkObject(t.metadata, `${path}.metadata`);
  return {
    id: t.id === undefined ? undefined : checkId(t.id, `${path}.id`),
    agentId,
    startedAt,
    endedAt,
    steps,
    finalPnl: checkFinite(t.finalPnl, `${path}.finalPnl`),
    metadata: checkJson(metadata, `${path}.metadata`) as { [key: string]: Json },
    modelVersion: t.modelVersion === undefined || t.modelVersion === null ? null : checkString(t.modelVersion, `${path}.modelVersion`, 200),
    llmCalls,
  };
}
