/** What the archive returns, and how table rows (snake_case) become those objects (camelCase). */
import type { ChatMessage, Json, Step, TokenLogprob } from './validate';

export interface StoredTrajectory {
  id: string;
  agentId: string;
  windowId: string;
  windowHours: number;
  /** Equal to windowId: the window is the scenario every agent in it faced. */
  scenarioId: string;
  startedAt: Date;
  endedAt: Date;
  steps: Step[];
  finalPnl: number;
  metadata: { [key: string]: Json };
  modelVersion: string | null;
}

export interface StoredLlmCall {
  id: string;
  trajectoryId: string | null;
  /** Order within its trajectory; null for a call outside one. */
  seq: number | null;
  windowId: string;
  agentId: string | null;
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

export interface MarketOutcome {
  windowId: string;
  asset: string;
  startPrice: number;
  endPrice: number;
  /** What happened in the window (news, events), as recorded. */
  events: Json[];
}

export interface WindowSummary {
  windowId: string;
  /** Distinct agents with a finished trajectory in the window. */
  agents: number;
  trajectories: number;
  meanPnl: number;
}

export interface JudgeScore {
  trajectoryId: string;
  /** In [0, 1]. */
  score: number;
  explanation?: string;
}

/** A judge's scores for one judged input; the same shape as @rlmesh/judge's CachedScores. */
export interface CachedJudgeScores {
  judgeId: string;
  scores: JudgeScore[];
  explanation?: string;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

export type TrainingBatchStatus = 'pending' | 'training' | 'trained' | 'failed';
export const TRAINING_BATCH_STATUSES: readonly TrainingBatchStatus[] = ['pending', 'training', 'trained', 'failed'];

export interface TrainingBatch {
  id: string;
  windowIds: string[];
  trajectoryIds: string[];
  dropoutRate: number;
  status: TrainingBatchStatus;
  createdAt: Date;
}

export interface TrainedModel {
  version: string;
  path: string;
  baseModel: string;
  batchId: string | null;
  metrics: { [key: string]: Json };
  createdAt: Date;
}

type Row = Record<string, unknown>;

export const TRAJECTORY_COLUMNS =
  'id, agent_id, window_id, window_hours, scenario_id, started_at, ended_at, steps, final_pnl, metadata, model_version';

export function trajectoryFromRow(r: Row): StoredTrajectory {
  return {
    id: r.id as string,
    agentId: r.agent_id as string,
    windowId: r.window_id as string,
    windowHours: r.window_hours as number,
    scenarioId: r.scenario_id as string,
    startedAt: r.started_at as Date,
    endedAt: r.ended_at as Date,
    steps: r.steps as Step[],
    finalPnl: r.final_pnl as number,
    metadata: r.metadata as { [key: string]: Json },
    modelVersion: (r.model_version as string | null) ?? null,
  };
}

export const LLM_CALL_COLUMNS =
  'id, trajectory_id, seq, window_id, agent_id, model, messages, completion, finish_reason, prompt_tokens, completion_tokens, latency_ms, logprobs, at';

export function llmCallFromRow(r: Row): StoredLlmCall {
  return {
    id: r.id as string,
    trajectoryId: (r.trajectory_id as string | null) ?? null,
    seq: (r.seq as number | null) ?? null,
    windowId: r.window_id as string,
    agentId: (r.agent_id as string | null) ?? null,
    model: r.model as string,
    messages: r.messages as ChatMessage[],
    completion: r.completion as string,
    finishReason: (r.finish_reason as string | null) ?? null,
    promptTokens: (r.prompt_tokens as number | null) ?? null,
    completionTokens: (r.completion_tokens as number | null) ?? null,
    latencyMs: (r.latency_ms as number | null) ?? null,
    logprobs: (r.logprobs as TokenLogprob[] | null) ?? null,
    at: r.at as Date,
  };
}

export function trainingBatchFromRow(r: Row): TrainingBatch {
  return {
    id: r.id as string,
    windowIds: r.window_ids as string[],
    trajectoryIds: r.trajectory_ids as string[],
    dropoutRate: r.dropout_rate as number,
    status: r.status as TrainingBatchStatus,
    createdAt: r.created_at as Date,
  };
}

export function trainedModelFromRow(r: Row): TrainedModel {
  return {
    version: r.version as string,
    path: r.path as string,
    baseModel: r.base_model as string,
    batchId: (r.batch_id as string | null) ?? null,
    metrics: r.metrics as { [key: string]: Json },
    createdAt: r.created_at as Date,
  };
}
