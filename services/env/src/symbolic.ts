/**
 * SymbolicEnv: a task behind a rule-based parent (seed 001's DeterministicParent; an LLM parent would
 * implement the same interface later, fix #5). Rewards are a vector {goal, pred}: goal is 1 for the
 * correct action; pred, the world-model intrinsic reward, is 0 here because the learner computes it
 * from its own world-model head. Episodes end on the time limit only (fix #1): `terminated` is always
 * false and `truncated` is true at `maxEpisodeSteps`. Success (goal > 0.9) is reported apart, in info.
 */
import { Box, Discrete, Rng } from '@rlmesh/core';
import type { ArrayEnv, ArrayStep, ResetOptions, StepResult } from './env';
import type { SymbolicTask } from './tasks';

export interface Parent<S> {
  reward(state: S, action: number): number;
  transition(state: S, action: number, rng: Rng, level: number): S;
}

export class DeterministicParent<S> implements Parent<S> {
  constructor(readonly task: SymbolicTask<S>) {}
  reward(state: S, action: number): number {
    return this.task.correct(state) === action ? 1 : 0;
  }
  transition(state: S, action: number, rng: Rng, level: number): S {
    return this.task.next(state, action, rng, level);
  }
}

export const SYMBOLIC_COMPONENTS = ['goal', 'pred'] as const;

export class SymbolicEnv<S> implements ArrayEnv {
  readonly observationSpace: Box;
  readonly actionSpace: Discrete;
  readonly rewardComponents = SYMBOLIC_COMPONENTS;
  readonly obsDim: number;
  readonly numLevels: number;
  private rng = new Rng(0);
  private state: S | null = null;
  private steps = 0;
  private level = 0;
  private readonly parent: Parent<S>;

  constructor(
    readonly task: SymbolicTask<S>,
    readonly maxEpisodeSteps = 1,
    parent?: Parent<S>,
  ) {
    if (!Number.isInteger(maxEpisodeSteps) || maxEpisodeSteps < 1)
      throw new Error(`maxEpisodeSteps must be a positive integer, got ${maxEpisodeSteps}`);
    this.parent = parent ?? new DeterministicParent(task);
    this.obsDim = task.obsDim;
    this.numLevels = task.numLevels;
    this.observationSpace = new Box(0, 1, [task.obsDim]);
    this.actionSpace = new Discrete(task.numActions);
  }

  resetInto(out: Float32Array, offset: number, seed?: number, options: ResetOptions = {}): void {
    if (seed !== undefined) this.rng = new Rng(seed);
    const level = options.difficulty ?? this.level;
    if (!Number.isInteger(level) || level < 0 || level >= this.numLevels) {
      throw new Error(`reset: difficulty must be an integer in [0, ${this.numLevels - 1}] for ${this.task.name}, got ${level}`);
    }
    this.level = level;
    this.state = this.task.initial(this.rng, level);
    this.steps = 0;
    this.task.observe(this.state, out, offset);
  }

  stepInto(action: number, out: Float32Array, offset: number, rewards: Record<string, Float32Array>, index: number): ArrayStep {
    if (this.state === null) throw new Error('step: the episode has ended or was never started; call reset first');
    if (!this.actionSpace.contains(action))
      throw new Error(`step: action ${action} is outside Discrete(${this.actionSpace.n}), valid actions are 0..${this.actionSpace.n - 1}`);
    const goal = this.parent.reward(this.state, action);
    this.state = this.parent.transition(this.state, action, this.rng, this.level);
    this.steps++;
    this.task.observe(this.state, out, offset);
    rewards.goal[index] = goal;
    rewards.pred[index] = 0;
    const truncated = this.steps >= this.maxEpisodeSteps;
    if (truncated) this.state = null;
    return { terminated: false, truncated, success: goal > 0.9 };
  }

  reset(seed?: number, options?: ResetOptions) {
    const obs = new Float32Array(this.obsDim);
    this.resetInto(obs, 0, seed, options);
    return { obs, info: { difficulty: this.level } };
  }

  step(action: number): StepResult {
    const obs = new Float32Array(this.obsDim);
    const r = { goal: new Float32Array(1), pred: new Float32Array(1) };
    const s = this.stepInto(action, obs, 0, r, 0);
    return {
      obs,
      reward: { goal: r.goal[0], pred: r.pred[0] },
      terminated: s.terminated,
      truncated: s.truncated,
      info: { success: s.success, difficulty: this.level },
    };
  }
}
