/**
 * SymbolicEnv: a task behind a rule-based parent (a DeterministicParent; an LLM parent would
 * implement the same interface). Rewards are a vector {goal, pred}: goal is 1 for the
 * correct action; pred, the world-model intrinsic reward, is 0 here because the learner computes it
 * from its own world-model head. Episodes end on the time limit only, as in WMIL phase 1: `terminated`
 * is always false and `truncated` is true at `maxEpisodeSteps`. Success (goal > 0.9) is reported apart.
 */
import {
  type ActionBuffer,
  Box,
  checkDiscreteAction,
  Discrete,
  type Env,
  type EnvSpec,
  type ResetOptions,
  Rng,
  type RngState,
  type Schema,
  type StepFlags,
} from '@rlmesh/core';
import { Conditional, PatternEcho, SequenceNext, type SymbolicTask } from './tasks';

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

export class SymbolicEnv<S> implements Env {
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

  snapshot(): unknown {
    return { rng: this.rng.state(), state: structuredClone(this.state), steps: this.steps, level: this.level };
  }

  restore(saved: unknown): void {
    const s = saved as { rng: RngState; state: S | null; steps: number; level: number };
    this.rng = Rng.fromState(s.rng);
    this.state = structuredClone(s.state);
    this.steps = s.steps;
    this.level = s.level;
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

  stepInto(
    actions: ActionBuffer,
    at: number,
    out: Float32Array,
    offset: number,
    rewards: Record<string, Float32Array>,
    index: number,
  ): StepFlags {
    if (this.state === null) throw new Error('step: the episode has ended or was never started; call reset first');
    const action = actions[at];
    checkDiscreteAction(action, this.actionSpace.n);
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
}

const SYMBOLS = { kind: 'int', default: 8, min: 2, max: 1024, doc: 'distinct symbols (and actions)' } as const;
const STEPS = { kind: 'int', default: 1, min: 1, max: 1000, doc: 'time limit: the episode is truncated after this many steps' } as const;

const ECHO_OPTIONS = { num_symbols: SYMBOLS, max_episode_steps: STEPS } as const satisfies Schema;
const SEQUENCE_OPTIONS = {
  num_symbols: SYMBOLS,
  max_episode_steps: STEPS,
  window: { kind: 'int', default: 3, min: 2, max: 16, doc: 'past symbols shown; two are needed to show the step' },
} as const satisfies Schema;

export const patternEcho: EnvSpec<typeof ECHO_OPTIONS> = {
  id: 'PatternEcho',
  description: 'echo the one-hot symbol shown (WMIL phase 1)',
  options: ECHO_OPTIONS,
  make: (o) => new SymbolicEnv(new PatternEcho(o.num_symbols), o.max_episode_steps),
};

export const sequenceNext: EnvSpec<typeof SEQUENCE_OPTIONS> = {
  id: 'SequenceNext',
  description: 'the next element of an arithmetic sequence mod N, three levels of step size',
  options: SEQUENCE_OPTIONS,
  make: (o) => new SymbolicEnv(new SequenceNext(o.num_symbols, o.window), o.max_episode_steps),
};

export const conditional: EnvSpec<typeof ECHO_OPTIONS> = {
  id: 'Conditional',
  description: 'echo, mirror or successor of a symbol by a shown rule, three levels',
  options: ECHO_OPTIONS,
  make: (o) => new SymbolicEnv(new Conditional(o.num_symbols), o.max_episode_steps),
};
