/**
 * What an evaluation of one policy on one suite produces. The evaluator writes it (as JSON, one file
 * or one object store entry per evaluation); reports, the dashboard and promotion gates read it.
 * Field names are snake_case because the JSON is the contract.
 */

/** An equal-tailed Bayesian interval for a success probability (Jeffreys prior unless stated). */
export interface RateInterval {
  low: number;
  high: number;
  /** Coverage, e.g. 0.8 for an 80% interval. */
  level: number;
  method: 'jeffreys';
}

export interface Summary {
  mean: number;
  median: number;
  std: number;
  min: number;
  max: number;
}

/** One environment of a suite, evaluated. */
export interface EnvironmentResult {
  /** The suite entry's name (unique within the suite). */
  name: string;
  env_id: string;
  options: Record<string, unknown>;
  /** The curriculum level (reset difficulty) every episode started at, when the suite set one. */
  level?: number;
  /** ID, OOD or any label the suite gives. */
  split: string;
  weight: number;
  episodes: number;
  /** Sum of per-episode scores in [0, 1] (success 0/1, or a fractional accuracy). */
  successes: number;
  success_rate: number;
  interval: RateInterval;
  returns: Summary;
  /**
   * Mean per-episode return of each reward component (returns.mean is their sum): a text env's
   * correctness and format apart. Absent in results written before it was recorded.
   */
  components?: Record<string, number>;
  lengths: Summary;
  /** The seeds the episodes started from, in order, so a result can be reproduced. */
  seeds: number[];
}

/** Weighted means over environments (weights normalised to sum 1 within each group). */
export interface Aggregate {
  success_rate: number;
  return_mean: number;
  weight: number;
}

export interface PolicyRef {
  /** A run id and policy version (mesh), a checkpoint path (embedded), or both. */
  run_id?: string;
  version?: number;
  checkpoint?: string;
  /** A human label for tables and plots ("initial", "sft", "update 120"). */
  label?: string;
}

export interface EvaluationResult {
  /** Unique; also the stored object's name. */
  id: string;
  suite: string;
  policy: PolicyRef;
  /** greedy: argmax / distribution mean; sampled: a seeded draw per step. */
  mode: 'greedy' | 'sampled';
  /** ISO 8601. */
  created_at: string;
  environments: EnvironmentResult[];
  /** All environments, and one entry per split label. */
  aggregate: { all: Aggregate; by_split: Record<string, Aggregate> };
  /** Wall time of the evaluation in seconds. */
  duration_s: number;
}
