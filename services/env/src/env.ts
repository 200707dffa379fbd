/**
 * The environment contract, with Gymnasium's semantics:
 *
 * - `reset(seed?, options?) -> { obs, info }` starts an episode. A seed re-seeds the environment's
 *   generator; without one the generator continues, so seeding happens only in reset.
 * - `step(action) -> { obs, reward, terminated, truncated, info }`. `reward` is a RewardVector of
 *   named components. `terminated`: the task reached a terminal state (its value is final);
 *   `truncated`: the episode was cut by the time limit (bootstrapping would be valid). After either,
 *   the next call must be `reset`; stepping a finished or never-started episode throws.
 * - An action outside `actionSpace` throws an Error naming the action and the valid range.
 *
 * `ArrayEnv` is the allocation-free form that VectorEnv drives: observations are written into a
 * caller's buffer and reward components into per-component arrays.
 */
import type { Discrete, RewardVector, Space } from '@rlmesh/core';

export interface StepResult {
  obs: Float32Array;
  reward: RewardVector;
  terminated: boolean;
  truncated: boolean;
  info: Record<string, unknown>;
}

export interface Env {
  readonly observationSpace: Space;
  readonly actionSpace: Discrete;
  readonly rewardComponents: readonly string[];
  /** Curriculum levels accepted by reset's `difficulty` option (1 when there is no curriculum). */
  readonly numLevels: number;
  reset(seed?: number, options?: ResetOptions): { obs: Float32Array; info: Record<string, unknown> };
  step(action: number): StepResult;
}

export interface ResetOptions {
  difficulty?: number;
}

export interface ArrayStep {
  terminated: boolean;
  truncated: boolean;
  success: boolean;
}

export interface ArrayEnv extends Env {
  readonly obsDim: number;
  resetInto(out: Float32Array, offset: number, seed?: number, options?: ResetOptions): void;
  /** Steps, writes the next observation at out[offset..] and reward component c at rewards[c][index]. */
  stepInto(action: number, out: Float32Array, offset: number, rewards: Record<string, Float32Array>, index: number): ArrayStep;
}
