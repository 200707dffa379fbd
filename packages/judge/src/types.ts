/**
 * What a judge reads and returns. A judge scores the trajectories of ONE window relative to each
 * other: they all faced the same market, so a relative score is fair where an absolute one is not.
 * The context is ground truth the agents did not have (how prices moved, which news came, what each
 * decision's asset did next); it is given to the judge instead of being mixed into the reward.
 */

export interface JudgeStep {
  /** The action as text, e.g. `BUY 3 ACME`. */
  action: string;
  time?: string;
  side?: 'buy' | 'sell' | 'hold' | null;
  asset?: string;
  size?: number;
  price?: number;
  /** filled, held or refused (an invalid action); absent means it took effect. */
  status?: string;
  reason?: string;
}

export interface JudgeTrajectory {
  id: string;
  agentId: string;
  steps: JudgeStep[];
  /** P&L over the window. */
  finalPnl: number;
  /** Optional numbers; the heuristic judge reads `maxDrawdown` (a fraction) and `startEquity`. */
  metrics?: Record<string, number>;
}

/** What one step's asset did over the horizon after it: ground truth. */
export interface StepOutcome {
  trajectoryId: string;
  /** Index into the trajectory's steps. */
  step: number;
  /** The asset's return over the horizon; null when the step traded nothing. */
  forwardReturn: number | null;
  asset?: string | null;
  horizonMs?: number;
  /** Headlines of events that came within the horizon. */
  news?: string[];
}

export interface JudgeContext {
  outcomes?: StepOutcome[];
  /** Anything else the judge should know (market outcomes, events); a chat judge shows it as JSON. */
  [key: string]: unknown;
}

export interface JudgeInput {
  windowId: string;
  trajectories: JudgeTrajectory[];
  context: JudgeContext;
}

export interface TrajectoryScore {
  id: string;
  /** In [0, 1], relative to the other trajectories of the window. */
  score: number;
  explanation?: string;
}

/** What a call cost: requests made, tokens the API reported, and their price. */
export interface Usage {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

export type JudgeResult =
  | { kind: 'scored'; windowId: string; judgeId: string; scores: TrajectoryScore[]; usage: Usage; attempts: number; cached: boolean }
  /** The judge gave no valid answer after its retries; the window is left out, never fatal. */
  | { kind: 'skipped'; windowId: string; judgeId: string; reason: string; usage: Usage; attempts: number };

export interface Judge {
  /** Names the judge and everything that changes its scores (model, prompt), for the score cache. */
  readonly id: string;
  score(input: JudgeInput): Promise<JudgeResult>;
}

export const noUsage = (): Usage => ({ requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 });

/** A malformed judge input; `field` names it, e.g. `trajectories.2.finalPnl`. */
export class JudgeInputError extends Error {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(`${field}: ${rule}`);
    this.name = 'JudgeInputError';
  }
}

/** Checks a window before any judge spends anything on it. */
export function checkInput(input: JudgeInput): void {
  if (!input || typeof input !== 'object') throw new JudgeInputError('(input)', 'must be an object');
  if (typeof input.windowId !== 'string' || input.windowId === '') throw new JudgeInputError('windowId', 'must be a non-empty string');
  if (!Array.isArray(input.trajectories) || input.trajectories.length === 0)
    throw new JudgeInputError('trajectories', 'must be a non-empty list');
  const ids = new Set<string>();
  input.trajectories.forEach((t, i) => {
    const at = `trajectories.${i}`;
    if (!t || typeof t !== 'object') throw new JudgeInputError(at, 'must be an object');
    if (typeof t.id !== 'string' || t.id === '') throw new JudgeInputError(`${at}.id`, 'must be a non-empty string');
    if (ids.has(t.id)) throw new JudgeInputError(`${at}.id`, `${JSON.stringify(t.id)} is used twice`);
    ids.add(t.id);
    if (typeof t.agentId !== 'string') throw new JudgeInputError(`${at}.agentId`, 'must be a string');
    if (typeof t.finalPnl !== 'number' || !Number.isFinite(t.finalPnl))
      throw new JudgeInputError(`${at}.finalPnl`, `must be a finite number, got ${t.finalPnl}`);
    if (!Array.isArray(t.steps)) throw new JudgeInputError(`${at}.steps`, 'must be a list');
    t.steps.forEach((s, j) => {
      if (!s || typeof s.action !== 'string') throw new JudgeInputError(`${at}.steps.${j}.action`, 'must be a string');
    });
  });
  if (!input.context || typeof input.context !== 'object') throw new JudgeInputError('context', 'must be an object');
  const outcomes = input.context.outcomes ?? [];
  if (!Array.isArray(outcomes)) throw new JudgeInputError('context.outcomes', 'must be a list');
  outcomes.forEach((o, i) => {
    if (!ids.has(o?.trajectoryId))
      throw new JudgeInputError(
        `context.outcomes.${i}.trajectoryId`,
        `names no trajectory of the window: ${JSON.stringify(o?.trajectoryId)}`,
      );
    if (o.forwardReturn !== null && !Number.isFinite(o.forwardReturn))
      throw new JudgeInputError(`context.outcomes.${i}.forwardReturn`, `must be a finite number or null, got ${o.forwardReturn}`);
  });
}
