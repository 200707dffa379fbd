/**
 * The learner's open extension points. A policy model or an algorithm is one file exporting its spec
 * and one registration line (models/index.ts, algorithms/index.ts). Config types come from the
 * specs' schemas, and each section is validated by its own schema, so errors name the key.
 */
import type { ActionDistribution, Box, EpisodeSummary, Infer, Rng, Rollout, Schema, Space } from '@rlmesh/core';
import { ConfigError } from '@rlmesh/core';
import type { Module, TrainProgram, Value } from '@rlmesh/graph';

// ---- policy models ---------------------------------------------------------------------------

/** What a model is built for: the env's spaces and reward components. */
export interface ModelContext {
  observationSpace: Box;
  actionSpace: Space;
  distribution: ActionDistribution;
}

/** A traced forward pass: the distribution's outputs (logits, or mean and log_std) and the value. */
export interface PolicyForward {
  /** categorical kinds: unnormalised logits [B, sum(n)]; gaussian: mean [B, D]. */
  logits?: Value;
  mean?: Value;
  /** gaussian: [D] or [B, D]. */
  logStd?: Value;
  value: Value;
  /** The trunk's last hidden state [B, H], for auxiliary heads. */
  hidden?: Value;
}

export interface PolicyModel {
  readonly module: Module;
  readonly distribution: ActionDistribution;
  readonly obsDim: number;
  /** Traces the policy on obs [B, S]. */
  forward(obs: Value): PolicyForward;
  /** A world-model head, for algorithms with a world-model loss: the predicted next observation. */
  predictNext?(hidden: Value, actions: Value): Value;
  /** Weight-file metadata (model name and sizes) for outside users. */
  readonly name: string;
}

export interface ModelSpec<S extends Schema = Schema> {
  id: string;
  description: string;
  options: S;
  build(options: Infer<S>, ctx: ModelContext): PolicyModel;
}

// ---- algorithms ------------------------------------------------------------------------------

export interface Feed {
  [name: string]: { data: Float32Array | BigInt64Array; shape: number[] };
}

/** What an algorithm's update may call on the learner. */
export interface UpdateContext<C, St> {
  cfg: C;
  /** Per-run state the algorithm carries between updates (an EMA baseline); saved in checkpoints. */
  state: St;
  /** 0-based index of this update and the run's total. */
  update: number;
  totalUpdates: number;
  /** Learner version minus the rollout's policy version: 0 on-policy. */
  lag: number;
  /** One train step on `feed` at learning rate `lr`. */
  step(feed: Feed, lr: number): Promise<Record<string, number>>;
  /** The current policy's outputs on obs rows (value, log_probs or mean/log_std). */
  evaluate(obs: Float32Array, rows: number): Promise<Record<string, Float32Array>>;
  /** Seeded per update: minibatch shuffles replay exactly. */
  rng: Rng;
  components: readonly string[];
  distribution: ActionDistribution;
}

export interface Check {
  name: string;
  start: number;
  end: number;
  target: string;
  pass: boolean;
}

/** One logged update, as metrics.jsonl holds it. */
export interface UpdateRecord {
  update: number;
  env_steps: number;
  episodes: number;
  level: number;
  /** Mean task success of this rollout's steps that ended episodes (or of all steps, for 1-step episodes). */
  success: number;
  success_mean: number;
  /** Mean undiscounted return (weighted reward components) of the last 20 finished episodes. */
  return_mean: number;
  policy_lag: number;
  metrics: Record<string, number>;
}

export interface AlgorithmSpec<S extends Schema = Schema, St = unknown> {
  name: string;
  description: string;
  config: S;
  /** Cross-field checks that a schema cannot state (throw ConfigError naming the key). */
  check?(cfg: Infer<S>): void;
  /**
   * The train-step program for `model`. Every mode builds the same one, so every mode trains alike;
   * a rollout may be stale (the mesh), so behaviour log-probs are there to correct with.
   */
  program(model: PolicyModel, cfg: Infer<S>, components: readonly string[]): TrainProgram;
  initialState(cfg: Infer<S>): St;
  /** Turns one rollout into train steps (epochs, minibatches) and returns the metrics to log. */
  update(rollout: Rollout, ctx: UpdateContext<Infer<S>, St>): Promise<Record<string, number>>;
  /** The reward weights the returns are reported with (component -> weight). */
  rewardWeights(cfg: Infer<S>, components: readonly string[]): Record<string, number>;
  /** Metric names the CLI progress line shows. */
  progressMetrics: readonly string[];
  /** What the run summary checks at the end (e.g. the WMIL MVP criteria). */
  criteria?(rows: readonly UpdateRecord[], ctx: { numActions: number }): Check[];
}

// ---- registries ------------------------------------------------------------------------------

const MODELS = new Map<string, ModelSpec>();
const ALGORITHMS = new Map<string, AlgorithmSpec>();

export function registerModel<S extends Schema>(spec: ModelSpec<S>): void {
  if (MODELS.has(spec.id)) throw new Error(`registerModel: "${spec.id}" is already registered`);
  MODELS.set(spec.id, spec as unknown as ModelSpec);
}

export function registerAlgorithm<S extends Schema, St>(spec: AlgorithmSpec<S, St>): void {
  if (ALGORITHMS.has(spec.name)) throw new Error(`registerAlgorithm: "${spec.name}" is already registered`);
  ALGORITHMS.set(spec.name, spec as unknown as AlgorithmSpec);
}

export function modelSpec(id: string): ModelSpec {
  const m = MODELS.get(id);
  if (!m) throw new ConfigError('model.id', `unknown model ${JSON.stringify(id)}; known models: ${[...MODELS.keys()].join(', ')}`);
  return m;
}

export function algorithmSpec(name: string): AlgorithmSpec {
  const a = ALGORITHMS.get(name);
  if (!a)
    throw new ConfigError('algo.name', `unknown algorithm ${JSON.stringify(name)}; known algorithms: ${[...ALGORITHMS.keys()].join(', ')}`);
  return a;
}

export const modelIds = () => [...MODELS.keys()];
export const algorithmNames = () => [...ALGORITHMS.keys()];

/** One finished episode's return: its reward components weighted as the algorithm weights them. */
export function episodeReturn(e: EpisodeSummary, weights: Record<string, number>): number {
  let r = 0;
  for (const [c, w] of Object.entries(weights)) r += w * (e.returns[c] ?? 0);
  return r;
}
