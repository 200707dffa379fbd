/**
 * The learner's open extension points. A policy model or an algorithm is one file exporting its spec
 * and one registration line (models/index.ts, algorithms/index.ts). Config types come from the
 * specs' schemas, and each section is validated by its own schema, so errors name the key.
 */
import type {
  ActionDistribution,
  Box,
  EpisodeSummary,
  Infer,
  Rng,
  Rollout,
  Schema,
  SequenceRollout,
  SequenceSampling,
  Space,
} from '@rlmesh/core';
import { ConfigError } from '@rlmesh/core';
import type { HostTensor, InputSpec, Module, TrainProgram, Value } from '@rlmesh/graph';
import type { CausalLm } from './models/causal-lm';
import type { AdamWConfig, SummedGradient, TracedLoss } from './models/gpt2-step';

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
  /** The current value function alone on obs rows (a program over the value head's parameters). */
  values(obs: Float32Array, rows: number): Promise<Float32Array>;
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

// ---- sequence algorithms (RL on token sequences: GRPO) ----------------------------------------

/** What a sequence algorithm's update may call on the learner (run/sequence-run.ts). */
export interface SequenceUpdateContext<C, St> {
  cfg: C;
  state: St;
  /** 0-based index of this update (one rollout each) and the run's total. */
  update: number;
  totalUpdates: number;
  /** Learner version minus the rollout's policy version: 0 on-policy. */
  lag: number;
  /** Optimizer steps taken before this update (the learning-rate schedule counts them). */
  optimizerSteps: number;
  /** The summed gradient of the algorithm's loss over micro-batch feeds, with the loss's named sums. */
  gradient(micro: readonly Record<string, HostTensor>[]): Promise<SummedGradient>;
  /** One AdamW step with `grad`; returns the gradient norm before clipping. */
  apply(grad: Float32Array, lr: number): Promise<number>;
  /** log p(labels) [B, T] under the frozen reference (the run's starting checkpoint) on an LM batch. */
  referenceLogProbs(batch: Record<string, HostTensor>): Promise<Float32Array>;
  /** The current policy's value head [B, T] on an LM batch; only for an algorithm with `valueHead`. */
  values(batch: Record<string, HostTensor>): Promise<Float32Array>;
  /** The id padding is written with (never scored). */
  padId: number;
  components: readonly string[];
}

export interface SequenceAlgorithmSpec<S extends Schema = Schema, St = unknown> {
  name: string;
  description: string;
  /** Marks the kind of rollout it trains on: token sequences from text envs. */
  rollout: 'sequence';
  config: S;
  check?(cfg: Infer<S>): void;
  /** How the actor samples: G, the completion budget and the sampling settings, and prompts per update. */
  sampling(cfg: Infer<S>): Omit<SequenceSampling, 'eosTokenId'> & { promptsPerUpdate: number };
  /** The optimizer's settings. */
  adamw(cfg: Infer<S>): AdamWConfig;
  /** Inputs of the gradient program beyond the LM batch (models/gpt2-step.ts LM_BATCH_INPUTS). */
  inputs(cfg: Infer<S>): InputSpec[];
  /** The loss traced on a micro-batch; every term normalised for the whole update (see gpt2-step.ts). */
  loss(model: CausalLm, b: Record<string, Value>, cfg: Infer<S>): TracedLoss;
  /** Whether update() asks for reference log-probs (a KL term); the run then keeps the reference program. */
  usesReference(cfg: Infer<S>): boolean;
  /**
   * Whether the policy carries a value head (PPO): a checkpoint without one gets a fresh head, and
   * every checkpoint saves it beside the language model's weights.
   */
  valueHead?: boolean;
  initialState(cfg: Infer<S>): St;
  update(rollout: SequenceRollout, ctx: SequenceUpdateContext<Infer<S>, St>): Promise<Record<string, number>>;
  rewardWeights(cfg: Infer<S>, components: readonly string[]): Record<string, number>;
  progressMetrics: readonly string[];
}

// ---- registries ------------------------------------------------------------------------------

const MODELS = new Map<string, ModelSpec>();
const ALGORITHMS = new Map<string, AlgorithmSpec>();
const SEQUENCE_ALGORITHMS = new Map<string, SequenceAlgorithmSpec>();

export function registerModel<S extends Schema>(spec: ModelSpec<S>): void {
  if (MODELS.has(spec.id)) throw new Error(`registerModel: "${spec.id}" is already registered`);
  MODELS.set(spec.id, spec as unknown as ModelSpec);
}

export function registerAlgorithm<S extends Schema, St>(spec: AlgorithmSpec<S, St>): void {
  if (ALGORITHMS.has(spec.name) || SEQUENCE_ALGORITHMS.has(spec.name))
    throw new Error(`registerAlgorithm: "${spec.name}" is already registered`);
  ALGORITHMS.set(spec.name, spec as unknown as AlgorithmSpec);
}

export function registerSequenceAlgorithm<S extends Schema, St>(spec: SequenceAlgorithmSpec<S, St>): void {
  if (ALGORITHMS.has(spec.name) || SEQUENCE_ALGORITHMS.has(spec.name))
    throw new Error(`registerSequenceAlgorithm: "${spec.name}" is already registered`);
  SEQUENCE_ALGORITHMS.set(spec.name, spec as unknown as SequenceAlgorithmSpec);
}

export function modelSpec(id: string): ModelSpec {
  const m = MODELS.get(id);
  if (!m) throw new ConfigError('model.id', `unknown model ${JSON.stringify(id)}; known models: ${[...MODELS.keys()].join(', ')}`);
  return m;
}

export function algorithmSpec(name: string): AlgorithmSpec {
  const a = ALGORITHMS.get(name);
  if (!a && SEQUENCE_ALGORITHMS.has(name))
    throw new ConfigError(
      'algo.name',
      `${name} trains on token sequences: its env must be a text env (known algorithms for this env: ${[...ALGORITHMS.keys()].join(', ')})`,
    );
  if (!a)
    throw new ConfigError('algo.name', `unknown algorithm ${JSON.stringify(name)}; known algorithms: ${[...ALGORITHMS.keys()].join(', ')}`);
  return a;
}

export function sequenceAlgorithmSpec(name: string): SequenceAlgorithmSpec {
  const a = SEQUENCE_ALGORITHMS.get(name);
  if (!a)
    throw new ConfigError(
      'algo.name',
      `unknown algorithm ${JSON.stringify(name)} for a text env; known sequence algorithms: ${[...SEQUENCE_ALGORITHMS.keys()].join(', ')}`,
    );
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
