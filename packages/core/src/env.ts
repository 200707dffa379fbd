/**
 * The environment contract, with Gymnasium's semantics:
 *
 * - `resetInto(out, offset, seed?, options?)` starts an episode and writes its first observation at
 *   out[offset..]. A seed re-seeds the environment's generator; without one the generator continues,
 *   so seeding happens only in reset.
 * - `stepInto(actions, at, out, offset, rewards, index)` takes the action stored at actions[at ..
 *   at + actionSpace.flatSize), writes the next observation at out[offset..] and reward component c
 *   at rewards[c][index], and returns terminated / truncated / success. `terminated`: the task reached
 *   a terminal state (its value is 0); `truncated`: the time limit cut the episode (bootstrapping from
 *   the final observation is valid). After either, the next call must be a reset; stepping an ended
 *   or never-started episode throws.
 * - Box actions outside the bounds are clipped by the environment, as Gymnasium's environments do;
 *   a NaN action and a discrete action outside the space throw an Error naming the action.
 *
 * Observations are flat float32 vectors (`obsDim` numbers); rewards are named components (goal,
 * pred, ...) that stay apart until the learner weights them.
 */
import type { Box, Space } from './spaces';

export interface ResetOptions {
  /** Curriculum level, 0..numLevels-1 (0 when there is no curriculum). */
  difficulty?: number;
}

export interface StepFlags {
  terminated: boolean;
  truncated: boolean;
  /** The task's own success flag, tracked apart from reward (false where a task has none). */
  success: boolean;
}

export type ActionBuffer = Int32Array | Float32Array;

export interface Env {
  readonly observationSpace: Box;
  readonly actionSpace: Space;
  readonly rewardComponents: readonly string[];
  /** Curriculum levels accepted by reset's `difficulty` option (1 when there is no curriculum). */
  readonly numLevels: number;
  readonly obsDim: number;
  resetInto(out: Float32Array, offset: number, seed?: number, options?: ResetOptions): void;
  stepInto(
    actions: ActionBuffer,
    at: number,
    out: Float32Array,
    offset: number,
    rewards: Record<string, Float32Array>,
    index: number,
  ): StepFlags;
  /**
   * Optional: the environment's whole state (generator included) as JSON-able data, and its inverse.
   * With them a run's checkpoint holds its episodes under way, so a resumed run replays the
   * uninterrupted one exactly; without them a resumed run starts fresh episodes.
   */
  snapshot?(): unknown;
  restore?(state: unknown): void;
}

export interface EnvStep extends StepFlags {
  obs: Float32Array;
  reward: Record<string, number>;
}

/** Gymnasium's `reset` for one environment, allocating: the first observation. */
export function resetEnv(env: Env, seed?: number, options?: ResetOptions): Float32Array {
  const obs = new Float32Array(env.obsDim);
  env.resetInto(obs, 0, seed, options);
  return obs;
}

/** Gymnasium's `step` for one environment, allocating; `action` is a number or the action's flat values. */
export function stepEnv(env: Env, action: number | ArrayLike<number>): EnvStep {
  const a = typeof action === 'number' ? [action] : Array.from(action);
  const buf = env.actionSpace.dtype === 'float32' ? Float32Array.from(a) : Int32Array.from(a);
  if (buf.length !== env.actionSpace.flatSize)
    throw new Error(`step: action has ${buf.length} values, the action space takes ${env.actionSpace.flatSize}`);
  const obs = new Float32Array(env.obsDim);
  const rewards = Object.fromEntries(env.rewardComponents.map((c) => [c, new Float32Array(1)]));
  const flags = env.stepInto(buf, 0, obs, 0, rewards, 0);
  return { obs, reward: Object.fromEntries(env.rewardComponents.map((c) => [c, rewards[c][0]])), ...flags };
}

/** Checks a discrete action; throws an Error naming it and the valid range. */
export function checkDiscreteAction(a: number, n: number): void {
  if (!(Number.isInteger(a) && a >= 0 && a < n))
    throw new Error(`step: action ${a} is outside Discrete(${n}), valid actions are 0..${n - 1}`);
}

/** Copies a Box action into `into`, clipped to the bounds (Gymnasium's np.clip); NaN throws. */
export function clipBoxAction(actions: ActionBuffer, at: number, space: Box, into: Float64Array): Float64Array {
  for (let i = 0; i < space.size; i++) {
    const v = actions[at + i];
    if (Number.isNaN(v)) throw new Error(`step: action[${i}] is NaN`);
    into[i] = Math.min(space.high[i], Math.max(space.low[i], v));
  }
  return into;
}
